"""The CLOB double's request authentication: L1 (an EIP-712 ``ClobAuth`` signature, to create or
derive API credentials) and L2 (the HMAC of ``timestamp + METHOD + path + body`` under the API
secret, on every trading and account call)."""

from __future__ import annotations

from eth_utils.address import to_checksum_address

from core.sim.http_double import HttpRequest
from core.sim.mock_clob_state import ApiKey, derive_api_key
from core.sim.mock_clob_venue import Reject
from core.sim.mock_clob_verify import l2_signature, recover_clob_auth


class ClobAuth:
    def __init__(self, chain_id: int, seed: str) -> None:
        self.chain_id = chain_id
        self._seed = seed
        self.api_keys: dict[str, ApiKey] = {}

    def creds_for(self, address: str) -> ApiKey:
        """The API credentials of ``address`` (deterministic per seed), registering them."""
        key = derive_api_key(to_checksum_address(address), self._seed)
        self.api_keys[key.api_key] = key
        return key

    def l1(self, req: HttpRequest) -> str:
        """The address whose ``ClobAuth`` signature the request carries."""
        h = req.headers
        try:
            address, sig, ts = h["poly_address"], h["poly_signature"], h["poly_timestamp"]
            nonce = int(h.get("poly_nonce", "0"))
        except (KeyError, ValueError):
            raise Reject("Invalid L1 Request headers", 401) from None
        recovered = recover_clob_auth(address, ts, nonce, sig, self.chain_id)
        if recovered.lower() != address.lower():
            raise Reject("Invalid L1 Request headers", 401)
        return to_checksum_address(address)

    def l2(self, req: HttpRequest) -> ApiKey:
        """The API key the request is signed with."""
        h = req.headers
        try:
            api_key, passphrase = h["poly_api_key"], h["poly_passphrase"]
            sig, ts, address = h["poly_signature"], h["poly_timestamp"], h["poly_address"]
        except KeyError:
            raise Reject("Unauthorized/Invalid api key", 401) from None
        key = self.api_keys.get(api_key)
        if key is None or key.passphrase != passphrase or key.address.lower() != address.lower():
            raise Reject("Unauthorized/Invalid api key", 401)
        body = req.body.decode("utf-8", errors="replace") if req.body else None  # bad bytes: a bad signature
        if l2_signature(key.secret, ts, req.method, req.path, body) != sig:
            raise Reject("Unauthorized/Invalid api key (bad signature)", 401)
        return key
