"""The CLOB V2 order digest and signature, computed directly from the fixed struct.

The official client builds an EIP-712 typed-data dict per order and hands it to eth_account's
generic encoder (~0.45 ms per order). The struct never changes, so everything but six words is
precomputed here:

- the type hash of ``Order(uint256 salt,address maker,...,bytes32 builder)``;
- per (exchange, chain) the domain separator of ``{name: "Polymarket CTF Exchange", version: "2",
  chainId, verifyingContract}``, and the ``0x1901 || separator`` prefix of the signed digest;
- per signer the maker/signer words, the signature-type word and the metadata/builder words
  (both zero, as the official client sends them).

Per order only salt, tokenId, makerAmount, takerAmount, side and timestamp are packed (32-byte
big-endian words), hashed with pycryptodome's C keccak and signed with coincurve (libsecp256k1,
RFC 6979 nonces, low-s: the same bytes eth_account produces; ``v = recid + 27``). Signature type 3
(POLY_1271 deposit wallet) signs the ERC-7739 ``TypedDataSign`` wrapper and sends the wrapped
signature, exactly as ``ExchangeOrderBuilderV2._build_poly_1271_order_signature`` does.

tests/integration/test_signing_equivalence.py holds every signature and body field equal to the
official client's for the same order.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

from coincurve import PrivateKey
from Crypto.Hash import keccak as _keccak

ORDER_TYPE_STRING = (
    "Order(uint256 salt,address maker,address signer,uint256 tokenId,"
    "uint256 makerAmount,uint256 takerAmount,uint8 side,uint8 signatureType,"
    "uint256 timestamp,bytes32 metadata,bytes32 builder)"
)
DOMAIN_TYPE_STRING = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
TYPED_DATA_SIGN_TYPE_STRING = (
    "TypedDataSign(Order contents,string name,string version,uint256 chainId,"
    "address verifyingContract,bytes32 salt)" + ORDER_TYPE_STRING
)
EXCHANGE_NAME = "Polymarket CTF Exchange"
EXCHANGE_VERSION = "2"
DEPOSIT_WALLET_NAME = "DepositWallet"
DEPOSIT_WALLET_VERSION = "1"
POLY_1271 = 3
"""Signature type of the deposit wallet: the signature is the ERC-7739 wrapper, not a bare ECDSA one."""
ZERO_WORD = bytes(32)


def _official_keccak256(data: bytes) -> bytes:
    return _keccak.new(data=data, digest_bits=256).digest()


class _KeccakState(threading.local):
    """One keccak state and output buffer per thread, reset for every hash."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.state = ctypes.c_void_p()
        if lib.keccak_init(ctypes.byref(self.state), 64, 24):  # capacity 2 x 32 bytes, 24 rounds
            raise RuntimeError("keccak_init failed")
        self.out = ctypes.create_string_buffer(32)
        self._finalizer = weakref.finalize(self, lib.keccak_destroy, self.state)


def _keccak_library() -> ctypes.CDLL | None:
    """pycryptodome's keccak library, on a handle of our own (argument types set on it do not touch
    pycryptodome's); None when pycryptodome did not load it through ctypes."""
    raw = getattr(_keccak, "_raw_keccak_lib", None)
    name = getattr(raw, "_name", None)
    if not isinstance(raw, ctypes.CDLL) or not isinstance(name, str):
        return None
    lib = ctypes.CDLL(name)
    lib.keccak_init.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_uint8]
    lib.keccak_reset.argtypes = [ctypes.c_void_p]
    lib.keccak_absorb.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.keccak_digest.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint8]
    lib.keccak_destroy.argtypes = [ctypes.c_void_p]
    return lib


def _ctypes_keccak(lib: ctypes.CDLL) -> Callable[[bytes], bytes]:
    reset, absorb, squeeze = lib.keccak_reset, lib.keccak_absorb, lib.keccak_digest
    local = _KeccakState(lib)

    def keccak(data: bytes) -> bytes:
        k = local
        st = k.state
        if reset(st) or absorb(st, data, len(data)) or squeeze(st, k.out, 32, 0x01):
            raise RuntimeError("keccak failed")
        return k.out.raw

    return keccak


def _cffi_keccak(lib: ctypes.CDLL) -> Callable[[bytes], bytes] | None:
    """The same three calls through cffi (the backend coincurve ships: cffi itself is not installed),
    whose calls cost a fifth of ctypes'. None without it."""
    try:
        from coincurve._cffi_backend import FFI
    except ImportError:
        return None
    ffi = FFI()

    def c_function(signature: str, name: str) -> Any:
        return ffi.cast(signature, ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)

    init = c_function("int(*)(void **, size_t, uint8_t)", "keccak_init")
    destroy = c_function("int(*)(void *)", "keccak_destroy")
    reset = c_function("int(*)(void *)", "keccak_reset")
    absorb = c_function("int(*)(void *, const unsigned char *, size_t)", "keccak_absorb")
    squeeze = c_function("int(*)(void *, unsigned char *, size_t, uint8_t)", "keccak_digest")

    class State(threading.local):
        def __init__(self) -> None:
            box = ffi.new("void **")
            if init(box, 64, 24):
                raise RuntimeError("keccak_init failed")
            self.state = box[0]
            self.out = ffi.new("unsigned char[32]")
            self.view = ffi.buffer(self.out)
            self._finalizer = weakref.finalize(self, destroy, self.state)

    local = State()

    def keccak(data: bytes) -> bytes:
        k = local
        st = k.state
        if reset(st) or absorb(st, data, len(data)) or squeeze(st, k.out, 32, 0x01):
            raise RuntimeError("keccak failed")
        return bytes(k.view)

    return keccak


def _direct_keccak() -> Callable[[bytes], bytes] | None:
    """Keccak-256 through pycryptodome's own C library, three calls per hash on a kept per-thread
    state (cffi's calls where it can, else ctypes'): a fifth to a quarter of what
    ``keccak.new(...).digest()`` costs in Python around the same C code (a state made and freed,
    wrappers, argument conversion per call). None when pycryptodome does not load its library
    through ctypes, or when neither way answers exactly as pycryptodome does."""
    lib = _keccak_library()
    if lib is None:
        return None
    probe = bytes(range(200))
    for make in (_cffi_keccak, _ctypes_keccak):
        keccak = make(lib)
        if keccak is not None and all(
            keccak(probe[:n]) == _official_keccak256(probe[:n]) for n in (0, 1, 135, 136, 137, 200)
        ):
            return keccak
    return None


keccak256: Callable[[bytes], bytes] = _direct_keccak() or _official_keccak256
"""Keccak-256 (Ethereum's, not SHA3-256) from pycryptodome's C implementation."""


ORDER_TYPE_HASH = keccak256(ORDER_TYPE_STRING.encode())
DOMAIN_TYPE_HASH = keccak256(DOMAIN_TYPE_STRING.encode())
TYPED_DATA_SIGN_TYPE_HASH = keccak256(TYPED_DATA_SIGN_TYPE_STRING.encode())
_EXCHANGE_NAME_HASH = keccak256(EXCHANGE_NAME.encode())
_WALLET_NAME_HASH = keccak256(DEPOSIT_WALLET_NAME.encode())
_WALLET_VERSION_HASH = keccak256(DEPOSIT_WALLET_VERSION.encode())
_ORDER_TYPE_SUFFIX_HEX = ORDER_TYPE_STRING.encode().hex() + len(ORDER_TYPE_STRING).to_bytes(2, "big").hex()
"""What follows the contents hash in a POLY_1271 signature: the type string and its uint16 length."""
_SIDE_WORDS = (ZERO_WORD, (1).to_bytes(32, "big"))
_UINT256_LIMIT = 1 << 256


class DigestInputInvalid(ValueError):
    """A field does not fit its EIP-712 type (not an address, over 256 bits, negative ...)."""


def address_word(address: str) -> bytes:
    """A 20-byte hex address as its left-padded 32-byte ABI word."""
    text = address[2:] if address.startswith(("0x", "0X")) else address
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise DigestInputInvalid(f"not a hex address: {address!r}") from None
    if len(raw) != 20:
        raise DigestInputInvalid(f"not a 20-byte address: {address!r}")
    return b"\x00" * 12 + raw


def bytes32_word(value: str) -> bytes:
    """A hex bytes32 value (``0x``-prefixed or not), left-padded like the official client's."""
    text = value[2:] if value.startswith(("0x", "0X")) else value
    try:
        raw = bytes.fromhex(text.zfill(64))
    except ValueError:
        raise DigestInputInvalid(f"not a hex bytes32 value: {value!r}") from None
    if len(raw) > 32:
        raise DigestInputInvalid(f"not a bytes32 value: {value!r}")
    return raw.rjust(32, b"\x00")


def uint_word(value: int) -> bytes:
    if not 0 <= value < _UINT256_LIMIT:
        raise DigestInputInvalid(f"not a uint256: {value}")
    return value.to_bytes(32, "big")


@lru_cache(maxsize=64)
def domain_separator(exchange: str, chain_id: int, version: str = EXCHANGE_VERSION) -> bytes:
    """EIP-712 domain separator of the CTF exchange at ``exchange`` on ``chain_id``."""
    return keccak256(
        DOMAIN_TYPE_HASH
        + _EXCHANGE_NAME_HASH
        + keccak256(version.encode())
        + uint_word(chain_id)
        + address_word(exchange)
    )


class DigestSigner:
    """Signs 32-byte digests with one secp256k1 key (coincurve). Never printed, never pickled."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        self._key = PrivateKey(secret)

    def __repr__(self) -> str:
        return "DigestSigner(<key not shown>)"

    def __reduce__(self) -> NoReturn:  # pragma: no cover - guard: pickling would copy the key
        raise TypeError("DigestSigner holds a private key and cannot be pickled")

    def sign(self, digest: bytes) -> bytes:
        """65 bytes r || s || v with v = 27 + recovery id (eth_account's layout)."""
        sig = self._key.sign_recoverable(digest, hasher=None)
        return sig[:64] + (sig[64] + 27).to_bytes(1, "big")


@dataclass(frozen=True, slots=True)
class OrderDigestPlan:
    """What is fixed for every order one signer signs on one exchange (see the module docstring)."""

    chain_id: int
    exchange: str
    domain_separator: bytes
    maker_signer: bytes
    """The maker and signer words, adjacent in the struct."""
    side_type: tuple[bytes, bytes]
    """Per side (BUY=0, SELL=1): the side word followed by the signature-type word."""
    tail: bytes
    """The metadata and builder words."""
    wrapper_tail: bytes | None
    """POLY_1271 only: the words after the contents hash in the ``TypedDataSign`` struct."""

    @classmethod
    def build(
        cls,
        exchange: str,
        chain_id: int,
        maker: str,
        signer: str,
        signature_type: int,
        metadata: str = "0x" + "00" * 32,
        builder: str = "0x" + "00" * 32,
    ) -> OrderDigestPlan:
        type_word = uint_word(signature_type)
        wrapper_tail = None
        if signature_type == POLY_1271:
            wrapper_tail = (
                _WALLET_NAME_HASH + _WALLET_VERSION_HASH + uint_word(chain_id) + address_word(signer) + ZERO_WORD
            )
        return cls(
            chain_id=chain_id,
            exchange=exchange,
            domain_separator=domain_separator(exchange, chain_id),
            maker_signer=address_word(maker) + address_word(signer),
            side_type=(_SIDE_WORDS[0] + type_word, _SIDE_WORDS[1] + type_word),
            tail=bytes32_word(metadata) + bytes32_word(builder),
            wrapper_tail=wrapper_tail,
        )

    def struct_hash(
        self, salt: int, token_id: int, maker_amount: int, taker_amount: int, side: int, timestamp_ms: int
    ) -> bytes:
        """keccak of the ABI-encoded ``Order`` struct (the EIP-712 ``hashStruct``)."""
        try:
            encoded = b"".join(
                (
                    ORDER_TYPE_HASH,
                    salt.to_bytes(32, "big"),
                    self.maker_signer,
                    token_id.to_bytes(32, "big"),
                    maker_amount.to_bytes(32, "big"),
                    taker_amount.to_bytes(32, "big"),
                    self.side_type[side],
                    timestamp_ms.to_bytes(32, "big"),
                    self.tail,
                )
            )
        except OverflowError:
            raise DigestInputInvalid("an order field does not fit a uint256 (negative or over 256 bits)") from None
        return keccak256(encoded)

    def digest(self, struct_hash: bytes) -> bytes:
        """The EIP-712 digest of an order's struct hash: the venue's order hash."""
        return keccak256(b"\x19\x01" + self.domain_separator + struct_hash)

    def hashes(
        self, salt: int, token_id: int, maker_amount: int, taker_amount: int, side: int, timestamp_ms: int
    ) -> tuple[bytes, bytes]:
        """(struct hash, order hash): everything of an order but its signature (:meth:`signature`)."""
        contents = self.struct_hash(salt, token_id, maker_amount, taker_amount, side, timestamp_ms)
        return contents, self.digest(contents)

    def signature(self, key: DigestSigner, contents: bytes, order_hash: bytes) -> str:
        """The signature as sent (``0x``-prefixed lower-case hex) of an order with these hashes."""
        if self.wrapper_tail is None:
            return "0x" + key.sign(order_hash).hex()
        wrapped = keccak256(TYPED_DATA_SIGN_TYPE_HASH + contents + self.wrapper_tail)
        inner = key.sign(self.digest(wrapped))
        return "0x" + inner.hex() + self.domain_separator.hex() + contents.hex() + _ORDER_TYPE_SUFFIX_HEX

    def sign(
        self,
        key: DigestSigner,
        salt: int,
        token_id: int,
        maker_amount: int,
        taker_amount: int,
        side: int,
        timestamp_ms: int,
    ) -> tuple[str, str]:
        """(signature as sent, order hash), both ``0x``-prefixed lower-case hex."""
        contents, order_hash = self.hashes(salt, token_id, maker_amount, taker_amount, side, timestamp_ms)
        return self.signature(key, contents, order_hash), "0x" + order_hash.hex()
