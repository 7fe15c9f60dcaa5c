"""HTTP surfaces: the tutorial's seed API, the OpenAI Images API, and operations routes."""
