"""A read-only TAXII 2.1 server over a member's verified bank (``trustwire member taxii``)."""

from clients.taxii.app import TaxiiSettings, collection_id, create_app
from clients.taxii.auth import TaxiiUser, load_users, new_token
from clients.taxii.serve import RunningTaxii, serve_in_thread

__all__ = ["RunningTaxii", "TaxiiSettings", "TaxiiUser", "collection_id", "create_app", "load_users", "new_token",
           "serve_in_thread"]
