"""bpttbench: which truncated-BPTT scheme learns fastest online, and how exact is its gradient."""

__version__ = "0.1.0"
