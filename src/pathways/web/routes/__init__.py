"""One router per audience: ``auth`` (everyone), ``care`` (care teams and schedulers)."""
