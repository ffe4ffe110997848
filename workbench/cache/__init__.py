"""The result cache: content-addressed keys, backends, integrity and single flight."""
