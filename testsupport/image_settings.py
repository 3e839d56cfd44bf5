"""The production settings, for the image's processes that the tests start on the test database.

Everything comes from jia_payments.settings and the environment, as in the image; only the
migration modules of the third-party apps whose tables the test database built from their models
(testsupport/schema.py) are unset, as the test run itself has them, so `migrate` and
`wait_for_db --migrations` see that database as fully migrated.
"""

from jia_payments.settings import *  # noqa: F403
from testsupport.schema import THIRD_PARTY_BUILT_FROM_MODELS

MIGRATION_MODULES = dict.fromkeys(THIRD_PARTY_BUILT_FROM_MODELS)
