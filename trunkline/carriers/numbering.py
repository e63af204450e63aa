"""Public numbering facts: E.164 syntax, NANP area codes, country calling codes.

Pure lookups, no I/O. ``E164_PATTERN`` is ITU-T E.164 as the control API
accepts it: ``+``, a non-zero first digit, at most 15 digits in all.

NANP (country code 1) numbers are ``+1``, a 3-digit area code (NPA), a 3-digit
exchange (NXX) and a 4-digit line number. The area code
tells the US state for geographic numbers; ``TOLL_FREE_AREA_CODES`` are the
non-geographic toll-free codes. The area-code table covers the codes assigned
to US states and the District of Columbia; a number whose area code is not in
it (the 555 fictional range, Caribbean and Canadian codes, new overlays) has
no known state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

E164_PATTERN = r"^\+[1-9]\d{1,14}$"
E164_RE = re.compile(E164_PATTERN)

TOLL_FREE_AREA_CODES: frozenset[str] = frozenset({"800", "833", "844", "855", "866", "877", "888"})

_STATE_AREA_CODES: Mapping[str, str] = {
    "AL": "205 251 256 334 659 938",
    "AK": "907",
    "AZ": "480 520 602 623 928",
    "AR": "479 501 870",
    "CA": "209 213 279 310 323 341 350 408 415 424 442 510 530 559 562 619 626 628 650 657 "
    "661 669 707 714 747 760 805 818 820 831 840 858 909 916 925 949 951",
    "CO": "303 719 720 970 983",
    "CT": "203 475 860 959",
    "DE": "302",
    "DC": "202 771",
    "FL": "239 305 321 352 386 407 448 561 645 656 689 727 728 754 772 786 813 850 863 904 941 954",
    "GA": "229 404 470 478 678 706 762 770 912 943",
    "HI": "808",
    "ID": "208 986",
    "IL": "217 224 309 312 331 447 464 618 630 708 730 773 779 815 847 861 872",
    "IN": "219 260 317 463 574 765 812 930",
    "IA": "319 515 563 641 712",
    "KS": "316 620 785 913",
    "KY": "270 364 502 606 859",
    "LA": "225 318 337 504 985",
    "ME": "207",
    "MD": "227 240 301 410 443 667",
    "MA": "339 351 413 508 617 774 781 857 978",
    "MI": "231 248 269 313 517 586 616 679 734 810 906 947 989",
    "MN": "218 320 507 612 651 763 952",
    "MS": "228 601 662 769",
    "MO": "314 417 557 573 636 660 816 975",
    "MT": "406",
    "NE": "308 402 531",
    "NV": "702 725 775",
    "NH": "603",
    "NJ": "201 551 609 640 732 848 856 862 908 973",
    "NM": "505 575",
    "NY": "212 315 329 332 347 363 516 518 585 607 624 631 646 680 716 718 838 845 914 917 929 934",
    "NC": "252 336 472 704 743 828 910 919 980 984",
    "ND": "701",
    "OH": "216 220 234 283 326 330 380 419 436 440 513 567 614 740 937",
    "OK": "405 539 572 580 918",
    "OR": "458 503 541 971",
    "PA": "215 223 267 272 412 445 484 570 582 610 717 724 814 835 878",
    "RI": "401",
    "SC": "803 821 839 843 854 864",
    "SD": "605",
    "TN": "423 615 629 731 865 901 931",
    "TX": "210 214 254 281 325 346 361 409 430 432 469 512 682 713 726 737 806 817 830 832 "
    "903 915 936 940 945 956 972 979",
    "UT": "385 435 801",
    "VT": "802",
    "VA": "276 434 540 571 686 703 757 804 826 948",
    "WA": "206 253 360 425 509 564",
    "WV": "304 681",
    "WI": "262 274 353 414 534 608 715 920",
    "WY": "307",
}

STATE_AREA_CODES: Mapping[str, tuple[str, ...]] = {
    state: tuple(codes.split()) for state, codes in _STATE_AREA_CODES.items()
}
US_STATES: frozenset[str] = frozenset(STATE_AREA_CODES)
AREA_CODE_STATE: Mapping[str, str] = {
    code: state for state, codes in STATE_AREA_CODES.items() for code in codes
}

_CANADIAN_AREA_CODE_LIST = (
    "204 226 236 249 250 263 289 306 343 354 365 367 368 382 403 416 418 428 431 437 438 "
    "450 468 474 506 514 519 548 579 581 584 587 604 613 639 647 672 683 705 709 742 753 "
    "778 780 782 807 819 825 867 873 879 902 905"
)
_CANADIAN_AREA_CODES: frozenset[str] = frozenset(_CANADIAN_AREA_CODE_LIST.split())

# Country calling code -> ISO 3166-1 alpha-2, for codes that name one country.
_COUNTRY_CODES: Mapping[str, str] = {
    "7": "RU",
    "20": "EG",
    "27": "ZA",
    "30": "GR",
    "31": "NL",
    "32": "BE",
    "33": "FR",
    "34": "ES",
    "36": "HU",
    "39": "IT",
    "40": "RO",
    "41": "CH",
    "43": "AT",
    "44": "GB",
    "45": "DK",
    "46": "SE",
    "47": "NO",
    "48": "PL",
    "49": "DE",
    "51": "PE",
    "52": "MX",
    "54": "AR",
    "55": "BR",
    "56": "CL",
    "57": "CO",
    "60": "MY",
    "61": "AU",
    "62": "ID",
    "63": "PH",
    "64": "NZ",
    "65": "SG",
    "66": "TH",
    "81": "JP",
    "82": "KR",
    "84": "VN",
    "86": "CN",
    "90": "TR",
    "91": "IN",
    "92": "PK",
    "234": "NG",
    "254": "KE",
    "351": "PT",
    "352": "LU",
    "353": "IE",
    "354": "IS",
    "358": "FI",
    "420": "CZ",
    "852": "HK",
    "886": "TW",
    "971": "AE",
    "972": "IL",
    "966": "SA",
}

UNKNOWN_COUNTRY = "ZZ"  # ISO 3166 user-assigned code, used for "unknown region"


def is_e164(value: str) -> bool:
    return E164_RE.fullmatch(value) is not None


def nanp_area_code(e164: str) -> str | None:
    """The three-digit area code of a +1 number with ten national digits, else None."""
    if len(e164) == 12 and e164.startswith("+1") and e164[2:].isdigit():
        return e164[2:5]
    return None


def is_toll_free(e164: str) -> bool:
    return nanp_area_code(e164) in TOLL_FREE_AREA_CODES


def state_for(e164: str) -> str | None:
    """The US state (two letters) of a geographic NANP number, None when unknown."""
    code = nanp_area_code(e164)
    return AREA_CODE_STATE.get(code) if code is not None else None


def country_for(e164: str) -> str:
    """ISO 3166-1 alpha-2 country of an E.164 number; ``ZZ`` when not in the table.

    NANP numbers are ``US`` unless their area code is Canadian.
    """
    if e164.startswith("+1"):
        return "CA" if nanp_area_code(e164) in _CANADIAN_AREA_CODES else "US"
    digits = e164[1:]
    for length in (3, 2, 1):
        country = _COUNTRY_CODES.get(digits[:length])
        if country is not None:
            return country
    return UNKNOWN_COUNTRY
