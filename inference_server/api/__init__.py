"""HTTP surfaces: the tutorial API (api/tutorial.py), the OpenAI Images API, operations routes."""
