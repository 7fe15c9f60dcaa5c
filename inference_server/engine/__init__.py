"""The generation engine: a diffusers pipeline on CPU. Never imports Flask."""
