"""The ``trustwire`` program: the one place that wires the exchange and the clients
together (``serve``, ``demo`` and the client commands). Nothing imports it but the
entry point; ``exchange`` and ``clients`` never do."""
