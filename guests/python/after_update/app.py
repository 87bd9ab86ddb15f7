"""The component's entry: componentize-py builds this module (``WitWorld``)."""

from after_update.handler import handle
from emmaa_guest.component import export

WitWorld = export(handle)
