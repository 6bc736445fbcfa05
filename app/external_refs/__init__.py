"""External references: the ids municipal systems (Treserva, Lifecare, Viva …) use for an
individual or a case. Identity data: shown only under the identity decision."""
