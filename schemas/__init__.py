"""Message contracts shared by every stage (the only place they are defined).

See `schemas.common` for the compatibility rule of schema versions. The contracts also ship
alone, as the `maskwatch-schemas` distribution (packages/maskwatch-schemas, pydantic only).
"""

__version__ = "1.1.1.1.0"
"""Version of the `maskwatch-schemas` distribution, tied to the schema versions: the schema
versions of FrameResult, DeadLetter, AlertEvent and FrameMeta, then a revision that counts
compatible changes (optional fields added) made at those versions and restarts at 0 when any
schema version moves. A consumer of result schema version 1 pins `maskwatch-schemas>=1,<2`.
A literal (not computed) so that building the distribution never imports pydantic; a test
checks it against the version constants.
"""
