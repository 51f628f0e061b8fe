"""Detectors for personal data in text, each a pattern plus, where one exists, a checksum.

A pattern alone flags every long number; the checksum is what makes a match mean
something. So: card numbers must pass Luhn, IBANs the ISO 13616 mod-97 check and their
country's length, French NIRs their mod-97 key, Spanish DNIs/NIEs their mod-23 letter.
Phone numbers have no checksum, so only unmistakable shapes count (see `find_phones`).

Every detector returns `Finding`s with character offsets into the text it was given —
text normalised by the caller (`normalize`: NFKC, invisible characters removed), so the
patterns are written for ASCII: a fullwidth at sign (U+FF20), a no-break space or a
zero-width space between digit groups reach them as `@`, a space and nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    kind: str  # email, phone, card, iban, ssn, fr_nir, es_dni
    start: int
    end: int
    text: str
    value: str = ""  # the canonical form, when it differs: `john [at] x [dot] com` → john@x.com

    @property
    def canonical(self) -> str:
        return self.value or self.text

    @property
    def hint(self) -> str:
        """Enough to find it in the text, not enough to leak it."""
        digits = re.sub(r"\D", "", self.text)
        if self.kind == "email":
            local, _, domain = self.canonical.partition("@")
            return f"{local[:1]}…@{domain}"
        if self.kind in ("card", "iban", "phone"):
            return f"ending {digits[-4:]}" if self.kind != "phone" else f"ending {digits[-2:]}"
        return f"at character {self.start}"


LABELS = {
    "email": "email address",
    "phone": "phone number",
    "card": "card number",
    "iban": "IBAN",
    "ssn": "US social security number",
    "fr_nir": "French social security number (NIR)",
    "es_dni": "Spanish DNI/NIE",
}

# An address, or one written to dodge a scraper: `john [at] gmail [dot] com`,
# `john(at)gmail(dot)com`, `john at gmail dot com`, `john @ gmail.com`. A bare " at "
# needs an obfuscated dot after it, or a webmail domain ("john at gmail.com"): "find us
# at shop.example" is not an address.
_AT_SIGN = r"\s?@\s?"
_AT_BRACKETED = r"\s?[\[({<]\s?(?i:at|@)\s?[\])}>]\s?"
_AT_WORD = r"\s+(?i:at)\s+"
_DOT_HIDDEN = r"\s?[\[({<]\s?(?i:dot|\.)\s?[\])}>]\s?|\s+(?i:dot)\s+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(
    r"(?<![\w.+%-])(?P<local>[A-Za-z0-9._%+-]{1,64})"
    rf"(?P<at>{_AT_SIGN}|{_AT_BRACKETED}|(?P<word>{_AT_WORD}))"
    rf"(?P<domain>(?:{_LABEL}(?:\.|{_DOT_HIDDEN}))+[A-Za-z]{{2,24}})(?![\w-])"
)
_DOT = re.compile(rf"\.|{_DOT_HIDDEN}")
_WEBMAIL = frozenset({
    "gmail", "googlemail", "yahoo", "ymail", "hotmail", "outlook", "icloud", "aol",
    "protonmail", "proton", "gmx", "yandex", "zoho", "fastmail", "msn", "wanadoo", "laposte",
})  # fmt: skip


def find_emails(text: str) -> Iterator[Finding]:
    for match in _EMAIL.finditer(text):
        labels = _DOT.split(match["domain"])
        hidden_dot = any(part != "." for part in _DOT.findall(match["domain"]))
        if match["word"] and not (
            hidden_dot or (labels[0].lower() in _WEBMAIL and len(labels) <= 3)
        ):
            continue
        canonical = f"{match['local']}@{'.'.join(labels)}"
        value = canonical if canonical != match.group() else ""
        yield Finding("email", match.start(), match.end(), match.group(), value)


# 13-19 digits, contiguous or in groups: the printed groupings 4-4-4-4(-1..3), Amex
# 4-6-5, Diners 4-6-4, with any mix of spaces, dots and hyphens between groups (zero-width
# separators are gone after normalisation, so a gap may be empty). Arbitrary digit runs
# with random spacing (a list of dates, ids) don't look like a card, so they aren't one;
# a grouping other than the printed ones (8-4-4: "4111<zero-width space>1111 1111 1111"
# normalised) counts only with a card network's prefix: Visa 4, Mastercard 51-55 and
# 22-27, Amex 34/37, Diners 30/36/38/39, JCB 35, Discover and UnionPay 6011/62/644-649/65.
_GAP = r"(?:[ ]?[.-][ ]?|[ ]{1,2})"
_CARD = re.compile(
    r"(?<![\d-])(?<!\d\.)(?:"
    rf"\d{{4}}(?:{_GAP}?\d{{4}}){{3}}(?:{_GAP}?\d{{1,3}})?"
    rf"|\d{{4}}{_GAP}?\d{{6}}{_GAP}?\d{{4,5}}"
    r"|\d{13,19})(?![\d-])(?!\.\d)"
)
_PRINTED = ((4, 4, 4, 4), (4, 4, 4, 4, 1), (4, 4, 4, 4, 2), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4))
_NETWORK = re.compile(r"4|5[1-5]|2[2-7]|3[47]|3[0689]|35|6(?:011|5|4[4-9]|2)")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def find_cards(text: str) -> Iterator[Finding]:
    for match in _CARD.finditer(text):
        groups = tuple(len(g) for g in re.findall(r"\d+", match.group()))
        digits = re.sub(r"\D", "", match.group())
        if not (13 <= len(digits) <= 19 and luhn_valid(digits)):
            continue
        if len(groups) == 1 or groups in _PRINTED or _NETWORK.match(digits):
            yield Finding("card", match.start(), match.end(), match.group(), digits)


# IBAN lengths by country (ISO 13616 registry). A country outside this table is not
# recognised: guessing the length would make one IBAN in five a random string.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2})\d{2}")


def iban_valid(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10 to 35, mod 97."""
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def find_ibans(text: str) -> Iterator[Finding]:
    for match in _IBAN_START.finditer(text):
        length = IBAN_LENGTHS.get(match.group(1))
        if length is None:
            continue
        # Take exactly the country's length of characters, allowing one space, hyphen or
        # dot between two of them (printed IBANs come in groups of four).
        chars: list[str] = []
        end = match.start()
        while end < len(text) and len(chars) < length:
            char = text[end]
            if char.isascii() and (char.isdigit() or char.isupper()):
                chars.append(char)
            elif not (char in " -." and chars and _iban_char(text, end + 1)):
                break
            end += 1
        if len(chars) != length or (end < len(text) and text[end].isalnum()):
            continue
        if iban_valid("".join(chars)):
            yield Finding("iban", match.start(), end, text[match.start() : end], "".join(chars))


def _iban_char(text: str, index: int) -> bool:
    return index < len(text) and text[index].isascii() and text[index].isalnum()


# National formats must stand alone: not one group of a longer run of digit groups
# (an account number, a list of ids), hence the look-arounds on both sides.
_ALONE_BEFORE = r"(?<![\d-])(?<!\d[ .-])"
_ALONE_AFTER = r"(?![\d-])(?![ .-]\d)"
_PHONES = (
    # International: +CC then 7-14 more digits, single spaces, dots, hyphens or a
    # bracketed area code between them.
    re.compile(r"(?<![\w+])\+\d(?:[ .-]?\(?\d\)?){7,14}(?![\d-])"),
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567.
    re.compile(_ALONE_BEFORE + r"(?:\(\d{3}\)[ ]?|\d{3}[-. ])\d{3}[-. ]\d{4}" + _ALONE_AFTER),
    # French style, five pairs with one kind of separator: 06 12 34 56 78.
    re.compile(
        _ALONE_BEFORE + r"0\d(?P<s>[ .-])\d{2}(?P=s)\d{2}(?P=s)\d{2}(?P=s)\d{2}" + _ALONE_AFTER
    ),
    # UK style: 020 7946 0958, 0161 496 0000, 01632 960 983, 07700 900123.
    re.compile(
        _ALONE_BEFORE
        + r"(?:0\d{2} \d{4} \d{4}|0\d{3} \d{3} \d{4}|0\d{4} \d{3} ?\d{3})"
        + _ALONE_AFTER
    ),
)


def find_phones(text: str) -> Iterator[Finding]:
    """Numbers shaped like phone numbers: international with `+`, North American with
    separators, French or UK national format with separators. A bare run of digits is
    never a phone number here — it is far more often an order or tracking number."""
    for pattern in _PHONES:
        for match in pattern.finditer(text):
            digits = re.sub(r"\D", "", match.group())
            if 8 <= len(digits) <= 15:
                yield Finding("phone", match.start(), match.end(), match.group())


def _ssn_digits(separator: str, name: str) -> str:
    return (
        rf"(?!000|666|9\d\d)\d{{3}}(?P<{name}>{separator})(?!00)\d{{2}}(?P={name})(?!0000)\d{{4}}"
    )


# US SSN: 3-2-4 digits with one kind of separator (hyphen, space or dot), or 9 digits
# right after "SSN" / "social security number"; never-issued numbers excluded.
_SSN = re.compile(
    rf"(?<![\d-])(?<!\d\.)(?P<n>{_ssn_digits('[-. ]', 's')})(?![\d-])(?!\.\d)"
    r"|(?i:\b(?:ssn|social\s+security(?:\s+(?:number|no\.?|n°|#))?))"
    r"(?:\s*(?:is|was|:|#|-)\s*|\s+)"
    rf"(?P<k>{_ssn_digits('[-. ]?', 't')})(?![\d-])(?!\.\d)"
)
_NIR = re.compile(
    r"(?<![\dA-Za-z])([12]) ?(\d{2}) ?(\d{2}) ?(\d{2}|2[AB]) ?(\d{3}) ?(\d{3}) ?(\d{2})"
    r"(?![\dA-Za-z])"
)
_DNI = re.compile(r"(?<![\dA-Za-z])([XYZ]?)-?(\d{7,8})-?([A-Z])(?![\dA-Za-z])")
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def nir_valid(groups: tuple[str, ...]) -> bool:
    """INSEE key: 97 - (the 13 digits mod 97); Corsica's 2A/2B count as 19/18."""
    sex, year, month, department, commune, order, key = groups
    department = {"2A": "19", "2B": "18"}.get(department, department)
    number = int(sex + year + month + department + commune + order)
    return 97 - number % 97 == int(key)


def dni_valid(prefix: str, digits: str, letter: str) -> bool:
    if prefix:  # NIE: X/Y/Z stand for 0/1/2, then 7 digits
        if len(digits) != 7:
            return False
        digits = str("XYZ".index(prefix)) + digits
    elif len(digits) != 8:
        return False
    return _DNI_LETTERS[int(digits) % 23] == letter


def find_national_ids(text: str) -> Iterator[Finding]:
    """US SSN (with separators, or after "SSN"; excluding never-issued areas), French NIR
    (key checked), Spanish DNI and NIE (control letter checked)."""
    for match in _SSN.finditer(text):
        group = "n" if match["n"] else "k"
        yield Finding("ssn", match.start(group), match.end(group), match[group])
    for match in _NIR.finditer(text):
        if nir_valid(match.groups()):
            yield Finding("fr_nir", match.start(), match.end(), match.group())
    for match in _DNI.finditer(text):
        if dni_valid(*match.groups()):
            yield Finding("es_dni", match.start(), match.end(), match.group())


DETECTORS: dict[str, Callable[[str], Iterator[Finding]]] = {
    "email": find_emails,
    "card": find_cards,
    "iban": find_ibans,
    "national_id": find_national_ids,
    "phone": find_phones,
}


# On the same span, the more specific checksum names it (a 15-digit NIR can pass Luhn).
_PRIORITY = ("iban", "fr_nir", "es_dni", "ssn", "card", "email", "phone")


def non_overlapping(findings: list[Finding]) -> list[Finding]:
    """Where matches overlap, keep the first, then the longest, then the most specific:
    a card number is not also a phone number inside it."""
    kept: list[Finding] = []
    ordered = sorted(findings, key=lambda f: (f.start, f.start - f.end, _PRIORITY.index(f.kind)))
    for finding in ordered:
        if kept and finding.start < kept[-1].end:
            continue
        kept.append(finding)
    return kept
