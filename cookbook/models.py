"""Old name, kept only until every import names cookbook.loading, cookbook.lineup or cookbook.doctor."""

from cookbook.lineup import LINEUP, SEED_MIN_MEMORY_GB, Checkpoint, checkpoint, recommend_model  # noqa: F401
from cookbook.loading import LoadError, download, fetch, load, set_image_budget  # noqa: F401
