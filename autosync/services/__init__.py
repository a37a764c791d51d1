"""Sync services: what the tasks and the CLI call. HTTP and SQL stay behind providers/ and store/."""
