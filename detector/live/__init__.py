"""Live capture on container bridges: the `detector watch` command."""
