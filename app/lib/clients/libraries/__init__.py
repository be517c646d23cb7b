"""The client libraries a failover is run through, side by side: the harness's own, redis-py, valkey-py, GLIDE."""
