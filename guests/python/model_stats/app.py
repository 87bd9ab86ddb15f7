"""The component's entry: componentize-py builds this module (``WitWorld``)."""

from emmaa_guest.component import export
from model_stats.handler import handle

WitWorld = export(handle)
