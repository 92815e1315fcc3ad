"""What people see of a pathway: `show` tables and `diagram` (Mermaid, offline HTML).

Reads checked definitions; writes nothing but the files it is asked to write.
"""
