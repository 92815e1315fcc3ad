"""pathways: declarative personal care pathways (persoonlijke zorgtrajecten) for Dutch care networks.

Layers, lowest first; nothing imports upward (checked by tests/test_layers.py):
``errors, clock`` <- ``definition`` <- ``views`` <- ``cli``.
Later layers (rules, compiler, runtime, store, audit, orchestration, documents) slot in
between ``definition`` and ``views`` in that order.
"""

__version__ = "0.1.0"
