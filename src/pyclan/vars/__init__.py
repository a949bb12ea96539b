"""Vars: values that services need, generated once and stored in the clan (clan-semantics §12).

`model` declares generators; `graph` orders them; `run` executes one; `store` keeps values
(public in clear, secrets age-encrypted via `age` and `keys`); `generate`, `status`, `access`
and `recipients` are the verbs; `api` is what the rest of pyclan calls.
"""
