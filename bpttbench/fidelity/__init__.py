"""Gradient fidelity: each scheme's gradient against the exact window gradient and finite differences
(gradients.py), followed along real trajectories (gradcheck.py), and the online rules' plain-NumPy
truth (online_reference.py)."""
