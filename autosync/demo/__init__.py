"""The live demo of `autosync run --demo`: seed both sides, keep them changing, inject faults, check convergence.

driver.Demo runs it; seed builds the data set; provider_edits and app_edits are the two sides'
changes; check reads progress and compares the provider with the database.
"""

from autosync.demo.driver import Demo

__all__ = ["Demo"]
