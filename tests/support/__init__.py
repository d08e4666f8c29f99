"""Helpers shared by the test-suite: database servers, the Django test project, seeding."""
