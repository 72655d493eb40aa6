"""Speed and overhead measurements of poolbench, with their recorded results (see README.md)."""
