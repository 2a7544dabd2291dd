"""Routing: classify, prioritise, assign and escalate tickets."""
