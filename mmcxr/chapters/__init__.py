"""Chapter pipelines: the orchestration each chapter's notebook calls step by step.

A notebook tells the story; the code it would otherwise grow (cohort recipes, the grid of
runs, the claims) lives here so that it is tested and shared by the smoke, book and full
profiles alike.
"""
