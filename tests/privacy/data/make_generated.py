"""Write ``generated_pii.json``: labelled sentences for the detectors' accuracy tests.

    .venv/bin/python tests/privacy/data/make_generated.py

Run once; the JSON file is committed and the tests read it (they never generate). The
sentences come from templates written here (not presidio-research's, which the shared
set ``../shared/data/pii/synth_dataset_v2.json`` uses) filled with Faker values in
several locales, with a fixed seed. Text is pasted the way it reaches a prompt: real
line breaks, escaped ones (the two characters ``\\`` ``n``, ``\\r\\n``, ``\\t``, a doubled
``\\\\n``), non-breaking and other Unicode spaces, zero-width characters. Numbers that are
not personal data (amounts, dates, order and invoice numbers, versions, postcodes) sit
beside the labelled values so precision means something.

Records have the shared set's shape: ``full_text`` and ``spans`` of ``entity_type``,
``entity_value``, ``start_position``, ``end_position``; plus ``locale`` and ``template``.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

from faker import Faker

SEED = 20261207
RECORDS = 2400
OUT = Path(__file__).with_name("generated_pii.json")

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "en_AU")
LABELLED = {
    "name": "PERSON",
    "email": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "short_phone": "PHONE_NUMBER",
    "card": "CREDIT_CARD",
    "iban": "IBAN_CODE",
    "ssn": "US_SSN",
    "test_ssn": "US_SSN",
    "ip": "IP_ADDRESS",
    "ipv6": "IP_ADDRESS",
}

# Between a label and its value, or between two pasted lines.
SEPARATORS = (
    " ",
    " ",
    "\n",
    "\\n",
    "\\n",
    "\\r\\n",
    "\\t",
    "\\\\n",
    "\u00a0",
    "\u202f",
    "\u2009",
    "\u3000",
    " \u200b",
    "\u200b",
    "\ufeff",
    "\u2060",
    "\\n\\n",
)
# Between two pasted lines: a zero-width character alone does not end a line.
LINE_SEPARATORS = tuple(s for s in SEPARATORS[2:] if s.strip("\u200b\u2060\ufeff"))
# Replacing the spaces inside a value (French typography puts NBSP in phone numbers).
INNER_SPACES = (" ", " ", " ", "\u00a0", "\u202f", "\u2009")

# Context words by language: (phone labels, short phone labels).
PHONE_LABELS = {
    "en": ("Phone:", "Tel.", "Mobile:", "Cell", "Fax:", "Office:", "call me on", "Ph:", "phone"),
    "de": ("Telefon:", "Tel.:", "Handy:", "Mobil:", "Fax:", "Rufnummer:", "Festnetz:"),
    "fr": ("Téléphone :", "Tél. :", "Portable :", "Mobile :", "Fax :", "Appelez-moi au"),
    "es": ("Teléfono:", "Tel.:", "Móvil:", "Fax:", "Llámame al", "Celular:"),
    "it": ("Telefono:", "Tel.", "Cellulare:", "Fax:", "Chiamami al", "Cell."),
    "nl": ("Telefoon:", "Tel.:", "Mobiel:", "Fax:", "Bel me op", "GSM:"),
}
AFTER_LABELS = ("(office)", "fax", "mobile", "(home)", "work", "(cell)")

# Templates: {slot} takes a value; {s} a separator; {S} a separator between pasted lines.
EN_TEMPLATES = (
    "{name}{s}{plabel}{s}{phone}",
    "{plabel}{s}{short_phone}",
    "{plabel}{s}{phone}{S}Email:{s}{email}",
    "fax{s}{phone}{s}fax",
    "{phone}{s}{after}",
    "Contact{s}{name}{S}{plabel}{s}{phone}{S}Ref {order}",
    "Hi team, {name} asked us to call {short_phone} after {time}.",
    "Ticket {order}: customer {name} ({email}) could not log in from {ip}.",
    "login failed for {email} from {ip} at {time}{S}retry from {ipv6}",
    '{{"user": "{email}", "ip": "{ip}", "note": "{plabel}{s}{phone}"}}',
    "Please charge card {card} for {amount} (invoice {invoice}).",
    "Card number:{s}{card}{S}Expiry:{s}{expiry}",
    "payment{s}{card}, amount {amount}, order {order}",
    "Wire {amount} to IBAN{s}{iban} by {date}, reference {invoice}.",
    "Beneficiary: {name}{S}IBAN:{s}{iban}{S}Amount:{s}{amount}",
    "bank account {iban} (holder {name})",
    "SSN:{s}{ssn}{S}DOB:{s}{date}",
    "Employee {name}, social security number {ssn}, started {date}.",
    "my ssn is {test_ssn} and my zip is {postcode}",
    "SSN{s}{test_ssn}",
    "Server {ip} answered in {ms} ms; version {version}.",
    "Host:{s}{ip}{S}Port:{s}{port}{S}Owner:{s}{email}",
    "The VPN gave {name} the address {ipv6} on {date}.",
    "Reply to {email} or ring {phone} before {date}.",
    "{name} <{email}>{S}{plabel}{s}{phone}{S}{street}",
    "Order {order} for {amount} ships on {date} to {name}.",
    "Room {room}, floor {floor}; badge {badge}; call extension {ext}.",
    "Invoice {invoice} dated {date}: total {amount}, VAT {vat}%.",
    "Meeting at {time} on {date} in building {floor}, {attendees} people.",
    "Tracking number {tracking} for parcel to {postcode}.",
)
LOCAL_TEMPLATES = {
    "de": (
        "Sehr geehrte Frau {name},{S}{plabel}{s}{phone}{S}E-Mail:{s}{email}",
        "{plabel}{s}{short_phone}",
        "Bitte überweisen Sie {amount} auf IBAN{s}{iban}, Rechnung {invoice}.",
        "Rückruf an {name} unter {phone} bis {date}.",
        "Bestellung {order} vom {date}, Betrag {amount}.",
    ),
    "fr": (
        "Bonjour {name},{S}{plabel}{s}{phone}{S}Courriel :{s}{email}",
        "{plabel}{s}{short_phone}",
        "Virement de {amount} sur l'IBAN{s}{iban} avant le {date}.",
        "Rappeler {name} au {phone} demain.",
        "Commande {order} du {date}, montant {amount}.",
    ),
    "es": (
        "Hola {name},{S}{plabel}{s}{phone}{S}Correo:{s}{email}",
        "{plabel}{s}{short_phone}",
        "Transferencia de {amount} a la cuenta IBAN{s}{iban}.",
        "Pedido {order} del {date}, importe {amount}.",
    ),
    "it": (
        "Gentile {name},{S}{plabel}{s}{phone}{S}Email:{s}{email}",
        "{plabel}{s}{short_phone}",
        "Bonifico di {amount} sull'IBAN{s}{iban} entro il {date}.",
        "Ordine {order} del {date}, importo {amount}.",
    ),
    "nl": (
        "Beste {name},{S}{plabel}{s}{phone}{S}E-mail:{s}{email}",
        "{plabel}{s}{short_phone}",
        "Maak {amount} over naar IBAN{s}{iban} voor {date}.",
        "Bestelling {order} van {date}, bedrag {amount}.",
    ),
}

_SLOT = re.compile(r"\{(\w+)\}|\{\{|\}\}")


def _digits_grouped(rng: random.Random, groups: tuple[int, ...], sep: str) -> str:
    return sep.join("".join(rng.choice("0123456789") for _ in range(n)) for n in groups)


def _short_phone(fake: Faker, rng: random.Random, locale: str) -> str:
    """A number written without its area code, as people give it locally."""
    first = str(rng.randint(2, 9))
    if locale in ("en_US",):
        return first + _digits_grouped(rng, (2, 4), rng.choice("-. "))
    if locale == "en_AU":
        return first + _digits_grouped(rng, (3, 4), " ")
    if locale == "fr_FR":
        return first + _digits_grouped(rng, (1, 2, 2, 2), " ")
    if locale == "de_DE":
        return first + _digits_grouped(rng, (2, 2, 2), rng.choice(" -"))
    return first + _digits_grouped(rng, (2, 4), rng.choice(" -"))


def _test_ssn(rng: random.Random) -> str:
    """The shape of an SSN in ranges the SSA never issues (used as test values)."""
    area = rng.choice((rng.randint(900, 999), 0, 666))
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _inner(value: str, rng: random.Random) -> str:
    if " " not in value or rng.random() > 0.3:
        return value
    return value.replace(" ", rng.choice(INNER_SPACES))


def _values(
    fake: Faker, us: Faker, rng: random.Random, locale: str, lang: str
) -> dict[str, Callable[[], str]]:
    labels = PHONE_LABELS[lang]
    return {
        "name": fake.name,
        "email": fake.email,
        "phone": lambda: _inner(fake.phone_number(), rng),
        "short_phone": lambda: _short_phone(fake, rng, locale),
        "card": lambda: _card(fake, rng),
        "iban": lambda: fake.iban() if rng.random() < 0.7 else _spaced_iban(fake.iban()),
        "ssn": us.ssn,
        "test_ssn": lambda: _test_ssn(rng),
        "ip": fake.ipv4,
        "ipv6": fake.ipv6,
        "plabel": lambda: rng.choice(labels),
        "after": lambda: rng.choice(AFTER_LABELS),
        "order": lambda: rng.choice(("#", "A-", "ORD-", "")) + str(rng.randint(10**4, 10**8)),
        "invoice": lambda: f"INV-{rng.randint(2019, 2026)}-{rng.randint(1, 99999):05d}",
        "amount": lambda: (
            rng.choice(("$", "€", "£", "")) + f"{rng.randint(1, 99999):,}.{rng.randint(0, 99):02d}"
        ),
        "date": lambda: fake.date(rng.choice(("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%B %d, %Y"))),
        "time": lambda: fake.time("%H:%M"),
        "expiry": lambda: fake.credit_card_expire(),
        "postcode": fake.postcode,
        "ms": lambda: str(rng.randint(1, 2500)),
        "version": lambda: f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}",
        "port": lambda: str(rng.randint(1, 65535)),
        "room": lambda: str(rng.randint(100, 999)),
        "floor": lambda: str(rng.randint(1, 40)),
        "badge": lambda: str(rng.randint(10**5, 10**7)),
        "ext": lambda: str(rng.randint(100, 9999)),
        "vat": lambda: str(rng.choice((7, 19, 20, 21, 22))),
        "attendees": lambda: str(rng.randint(2, 300)),
        "tracking": lambda: "1Z" + "".join(rng.choice("0123456789ABCDEFGHJK") for _ in range(16)),
        "street": lambda: fake.street_address(),
    }


def _card(fake: Faker, rng: random.Random) -> str:
    number = fake.credit_card_number()
    if rng.random() < 0.4 and len(number) == 16:
        sep = rng.choice((" ", "-"))
        number = sep.join(number[i : i + 4] for i in range(0, 16, 4))
    return number


def _spaced_iban(iban: str) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def render(
    template: str, values: dict[str, Callable[[], str]], rng: random.Random
) -> tuple[str, list[dict[str, object]]]:
    parts: list[str] = []
    spans: list[dict[str, object]] = []
    pos = 0
    at = 0
    for m in _SLOT.finditer(template):
        literal = template[at : m.start()]
        parts.append(literal)
        pos += len(literal)
        at = m.end()
        token = m.group()
        if token in ("{{", "}}"):
            parts.append(token[0])
            pos += 1
            continue
        slot = m.group(1)
        if slot == "s":
            value = rng.choice(SEPARATORS)
        elif slot == "S":
            value = rng.choice(LINE_SEPARATORS)
        else:
            value = values[slot]()
        if slot in LABELLED:
            spans.append(
                {
                    "entity_type": LABELLED[slot],
                    "entity_value": value,
                    "start_position": pos,
                    "end_position": pos + len(value),
                }
            )
        parts.append(value)
        pos += len(value)
    parts.append(template[at:])
    return "".join(parts), spans


def generate() -> list[dict[str, object]]:
    rng = random.Random(SEED)
    Faker.seed(SEED)
    fakes = {loc: Faker(loc) for loc in LOCALES}
    for i, fake in enumerate(fakes.values()):
        fake.seed_instance(SEED + i)
    records = []
    for n in range(RECORDS):
        locale = LOCALES[n % len(LOCALES)]
        lang = locale[:2]
        templates = EN_TEMPLATES + LOCAL_TEMPLATES.get(lang, ())
        index = rng.randrange(len(templates))
        values = _values(
            fakes[locale], fakes["en_US"], rng, locale, lang if lang in PHONE_LABELS else "en"
        )
        text, spans = render(templates[index], values, rng)
        records.append(
            {
                "full_text": text,
                "spans": spans,
                "locale": locale,
                "template": f"{lang if index >= len(EN_TEMPLATES) else 'en'}-{index}",
            }
        )
    return records


def main() -> None:
    records = generate()
    OUT.write_text(json.dumps(records, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {len(records)} records to {OUT}")


if __name__ == "__main__":
    main()
