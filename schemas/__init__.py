"""Message contracts shared by every stage (the only place they are defined).

See `schemas.common` for the compatibility rule of schema versions.
"""
