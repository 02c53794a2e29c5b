"""The stage kinds, one thin module each (a typed ``Config`` and ``run``); the contract is ``hala_exp.core.stage``."""
