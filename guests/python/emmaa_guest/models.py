"""The models' configurations, read from the bucket in batches."""

from .answer import Refusal
from .config import MAX_CONFIG_BYTES, ModelConfig, config_key
from .host import AwsError, Host, Settings
from .names import ModelName

#: How many configurations one call to the host reads.
CONFIG_BATCH = 64


def read_configs(host: Host, settings: Settings, models: list[ModelName]) -> "list[ModelConfig | Refusal]":
    """The configuration of each of `models`, in order, or why it could not be read."""
    configs: "list[ModelConfig | Refusal]" = []
    for start in range(0, len(models), CONFIG_BATCH):
        batch = models[start : start + CONFIG_BATCH]
        objects = host.get_objects(settings.bucket, [config_key(model) for model in batch], MAX_CONFIG_BYTES)
        for model, got in zip(batch, objects):
            if isinstance(got, AwsError):
                reason = f"reading s3://{settings.bucket}/{config_key(model)} failed: {got.describe()}"
                configs.append(Refusal(model.value, reason))
                continue
            try:
                configs.append(ModelConfig.parse(model, got))
            except Refusal as refusal:
                configs.append(refusal)
    return configs
