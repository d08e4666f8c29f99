"""A swapped-in OAuth2 Application model (used when OAR_APPLICATION_MODEL is set)."""
