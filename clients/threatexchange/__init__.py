"""A python-threatexchange extension: the ``threatexchange`` CLI and HMA fetch from Trustwire.

    pip install 'trustwire[threatexchange]'
    threatexchange config extensions add clients.threatexchange
    threatexchange config collab edit trustwire my-taskforce --create \\
        --exchange exchange.example:7443 --member-id northwind \\
        --operator-public-key HEX --log-key VKEY
    TX_TRUSTWIRE_KEY=$(cat northwind.key) threatexchange fetch
    threatexchange match photo upload.jpg

HMA: list :class:`TrustwireSignalExchangeAPI` among its exchange types and the signal
types below among its signal types. See :mod:`clients.threatexchange.api` for what is
verified and how deletes and checkpoints work, and
:mod:`clients.threatexchange.signal_types` for the type mapping.
"""

from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest

from clients.threatexchange.api import (
    TrustwireCheckpoint,
    TrustwireCollabConfig,
    TrustwireCredentials,
    TrustwireSignalExchangeAPI,
    TrustwireSignalMetadata,
)
from clients.threatexchange.signal_types import (
    AccountContent,
    AccountSignal,
    DomainSignal,
    FileMD5Signal,
    FileSHA1Signal,
    FileSHA256Signal,
)

__all__ = [
    "TX_MANIFEST",
    "AccountContent",
    "AccountSignal",
    "DomainSignal",
    "FileMD5Signal",
    "FileSHA1Signal",
    "FileSHA256Signal",
    "TrustwireCheckpoint",
    "TrustwireCollabConfig",
    "TrustwireCredentials",
    "TrustwireSignalExchangeAPI",
    "TrustwireSignalMetadata",
]

TX_MANIFEST = ThreatExchangeExtensionManifest(
    signal_types=(FileMD5Signal, FileSHA1Signal, FileSHA256Signal, DomainSignal, AccountSignal),
    content_types=(AccountContent,),
    apis=(TrustwireSignalExchangeAPI,),
)
