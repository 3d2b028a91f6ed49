"""Producer SDK, CLI, simulator and dataset replay for streamrec."""
