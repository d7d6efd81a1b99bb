"""Backprop Studio's Streamlit side: the per-session Studio, figure builders and URL state."""
