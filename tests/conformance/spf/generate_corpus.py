#!/usr/bin/python3
"""Writes tests/corpora/spf/generated/records.yml: SPF records generated from the RFC 7208
grammar, each with the zone it needs, a client address and a sender, in the openspf suites'
YAML format without expected results (test_spf_oracle.cc compares libspf2 and our evaluator
on them). Deterministic: a fixed seed, no clock, no network; the output is committed, so the
test never runs this. Regenerate with
    python3 tests/conformance/spf/generate_corpus.py > tests/corpora/spf/generated/records.yml
and re-check tests/conformance/spf/generated-differences.txt (tests/corpora/spf/generated/
SOURCE.md says how)."""

import ipaddress
import json
import os
import random
import sys
import urllib.parse

import yaml  # Debian's python3-yaml, for reading the suite the mutations start from

SEED = 7208

# Clients: documentation prefixes; 192.0.2.1 and 2001:db8::1 are every case domain's A and
# AAAA, 192.0.2.10/2001:db8::10 a.example.net's, 192.0.2.20/2001:db8::20 the MX host's.
V4 = ["192.0.2.1", "192.0.2.10", "192.0.2.20", "198.51.100.7"]
V6 = ["2001:db8::1", "2001:db8::10", "2001:db8::20", "2001:db8:ffff::7"]
MAPPED = ["::ffff:192.0.2.1", "::ffff:192.0.2.20", "::ffff:198.51.100.7"]
CLIENTS = V4 + V6 + MAPPED

HELO = "mail.example.net"

# Names every family's zone holds besides the cases' own.
BASE_ZONE = {
    "a.example.net": [("A", "192.0.2.10"), ("AAAA", "2001:db8::10")],
    "mx.example.net": [("A", "192.0.2.20"), ("AAAA", "2001:db8::20")],
    "mxonly.example.net": [("MX", [10, "mx.example.net"])],
    "host.example.net": [("A", "192.0.2.1")],
    "host6.example.net": [("AAAA", "2001:db8::1")],
    "1.2.0.192.in-addr.arpa": [("PTR", "host.example.net")],
    "20.2.0.192.in-addr.arpa": [("PTR", "mx.example.net")],
    "7.100.51.198.in-addr.arpa": [("PTR", "unvalidated.example.net")],
    "inc-pass.example.net": [("TXT", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/48 -all")],
    "inc-fail.example.net": [("TXT", "v=spf1 -all")],
    "inc-softfail.example.net": [("TXT", "v=spf1 ~all")],
    "inc-neutral.example.net": [("TXT", "v=spf1 ?all")],
    "inc-noall.example.net": [("TXT", "v=spf1 ip4:203.0.113.0/24")],
    "inc-norecord.example.net": [("A", "192.0.2.1"), ("TXT", "not an spf record")],
    "inc-permerror.example.net": [("TXT", "v=spf1 ip4:300.1.1.1 -all")],
    "inc-redirect.example.net": [("TXT", "v=spf1 redirect=inc-pass.example.net")],
    "inc-timeout.example.net": ["TIMEOUT"],
    "inc-servfail.example.net": [("SERVFAIL", True)],
    "inc-two.example.net": [("TXT", "v=spf1 +all"), ("TXT", "v=spf1 -all")],
    "inc-exp.example.net": [("TXT", "v=spf1 -all exp=exp.example.net")],
    "exp.example.net": [("TXT", "denied for %{i} by %{d} at %{r}")],
}


def nibbles(address):
    """RFC 7208 §7.3: %{i} of an IPv6 address, its nibbles in order, dot-separated."""
    return ".".join(ipaddress.IPv6Address(address).exploded.replace(":", ""))


def reverse_name(address):
    ip = evaluated_ip(address)
    if ip.version == 4:
        return ".".join(reversed(str(ip).split("."))) + ".in-addr.arpa"
    return ".".join(reversed(nibbles(str(ip)).split("."))) + ".ip6.arpa"


def evaluated_ip(address):
    """RFC 7208 §5: an IPv4-mapped IPv6 client is evaluated as IPv4."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def validated_name(address):
    return {"192.0.2.1": "host.example.net", "192.0.2.20": "mx.example.net",
            "2001:db8::1": "host6.example.net"}.get(str(evaluated_ip(address)), "unknown")


def macro_values(case, domain):
    sender = case["mailfrom"] or "postmaster@" + case["helo"]
    local, _, sender_domain = sender.rpartition("@")
    ip = evaluated_ip(case["host"])
    return {
        "s": sender, "l": local or "postmaster", "o": sender_domain, "d": domain,
        "i": str(ip) if ip.version == 4 else nibbles(str(ip)),
        "p": validated_name(case["host"]), "v": "in-addr" if ip.version == 4 else "ip6",
        "h": case["helo"],
    }


BASE_ZONE[reverse_name("2001:db8::1")] = [("PTR", "host6.example.net")]

DELIMITERS = ".-+,/_="


def expand(spec, values):
    """The RFC 7208 §7 expansion of a domain-spec, or None where the RFC makes it a permerror
    (syntax, exp-only letters, a zero DIGIT transformer)."""
    out = []
    i = 0
    while i < len(spec):
        c = spec[i]
        if c != "%":
            if not (0x21 <= ord(c) <= 0x7E):
                return None
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(spec):
            return None
        nxt = spec[i + 1]
        if nxt in "%_-":
            out.append({"%": "%", "_": " ", "-": "%20"}[nxt])
            i += 2
            continue
        if nxt != "{":
            return None
        end = spec.find("}", i)
        if end < 0:
            return None
        body = spec[i + 2:end]
        i = end + 1
        if not body or body[0].lower() not in values:
            return None
        letter, rest = body[0], body[1:]
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        reverse = False
        if rest[:1] in ("r", "R"):
            reverse, rest = True, rest[1:]
        if any(d not in DELIMITERS for d in rest):
            return None
        if digits and int(digits) == 0:
            return None
        value = values[letter.lower()]
        parts = [value]
        for d in (rest or "."):
            parts = [p for part in parts for p in part.split(d)]
        if reverse:
            parts.reverse()
        if digits:
            parts = parts[-int(digits):]
        text = ".".join(parts)
        if letter.isupper():
            text = urllib.parse.quote(text, safe="-._~")
        out.append(text)
    name = "".join(out)
    while len(name) > 253 and "." in name:
        name = name.split(".", 1)[1]
    return name


class Corpus:
    def __init__(self):
        self.families = []
        self.rng = random.Random(SEED)

    def family(self, name, description):
        self.families.append({"name": name, "description": description, "tests": []})

    def add(self, record, host=None, extra=None, mailfrom=None, helo=HELO, host_records=True,
            note=""):
        """One case: `record` (a string, a list of strings for one split TXT record, or a
        tuple of records) at the case's own domain; `extra` more zone entries, "$D" in names
        and values standing for that domain. Returns the case for further zone entries."""
        family = self.families[-1]
        number = len(family["tests"]) + 1
        domain = "c%03d.%s.example" % (number, family["name"])
        if mailfrom == "" and helo == HELO:
            helo = domain  # the null sender: the HELO identity is the case's domain
        case = {
            "id": "%s-%03d" % (family["name"], number), "domain": domain,
            "host": host or self.rng.choice(CLIENTS), "helo": helo.replace("$D", domain),
            "mailfrom": ("user@" + domain) if mailfrom is None else mailfrom.replace("$D", domain),
            "description": (note or (record if isinstance(record, str) else json.dumps(record))
                            ).replace("$D", domain),
        }
        zone = case["zone"] = {}
        entries = zone.setdefault(domain, [])
        records = record if isinstance(record, tuple) else (record,)
        for r in records:
            if isinstance(r, str):
                entries.append(("TXT", r.replace("$D", domain)))
            elif r is not None:
                entries.append(("TXT", [piece.replace("$D", domain) for piece in r]))
        if host_records:
            entries += [("A", "192.0.2.1"), ("AAAA", "2001:db8::1"),
                        ("MX", [10, "mx.example.net"])]
        for name, name_entries in (extra or {}).items():
            target = zone.setdefault(name.replace("$D", domain), [])
            for entry in name_entries:
                if isinstance(entry, tuple):
                    kind, value = entry
                    if isinstance(value, str):
                        value = value.replace("$D", domain)
                    elif isinstance(value, list):
                        value = [v.replace("$D", domain) if isinstance(v, str) else v for v in value]
                    target.append((kind, value))
                else:
                    target.append(entry)
        family["tests"].append(case)
        return case

    def add_exists(self, spec, host=None, mailfrom=None, helo=HELO, where="exists:{}"):
        """A macro case: the expansion RFC 7208 gives is put in the zone (A 127.0.0.2), so an
        evaluator that expands it otherwise fails to match."""
        family = self.families[-1]
        number = len(family["tests"]) + 1
        domain = "c%03d.%s.example" % (number, family["name"])
        spec_text = spec.replace("$D", domain)
        case = self.add("v=spf1 " + where.format(spec_text) + " -all", host=host,
                        mailfrom=mailfrom, helo=helo)
        name = expand(spec_text, macro_values(case, domain))
        if name:
            case["zone"].setdefault(name, []).append(("A", "127.0.0.2"))
            if where.startswith(("include:", "redirect=")):
                case["zone"][name].append(("TXT", "v=spf1 +all"))
        return case


def yaml_string(text):
    return json.dumps(text, ensure_ascii=True)


def yaml_value(value):
    if isinstance(value, list):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return yaml_string(value)


# The base names every case may reach without naming them: the case domains' MX host and the
# clients' PTR names with their addresses.
ALWAYS = ["mx.example.net", "host.example.net", "host6.example.net", "1.2.0.192.in-addr.arpa",
          "20.2.0.192.in-addr.arpa", "7.100.51.198.in-addr.arpa", reverse_name("2001:db8::1")]


def case_zone(case):
    """The case's own names, and the base names it needs: those always reachable and those
    named in a TXT record it can reach. One small zone per case keeps both DNS layers fast."""
    zone = {}
    wanted = list(ALWAYS)
    texts = [json.dumps(e[1]) for entries in case["zone"].values() for e in entries
             if isinstance(e, tuple) and e[0] == "TXT"]
    while True:
        more = [n for n in BASE_ZONE if n not in wanted and any(n in t for t in texts)]
        if not more:
            break
        wanted += more
        texts += [json.dumps(e[1]) for n in more for e in BASE_ZONE[n]
                  if isinstance(e, tuple) and e[0] == "TXT"]
    for name in BASE_ZONE:
        if name in wanted:
            zone[name] = list(BASE_ZONE[name])
    for name, entries in case["zone"].items():
        zone.setdefault(name, []).extend(entries)
    return zone


def write(corpus, out):
    out.write("# Generated by tests/conformance/spf/generate_corpus.py (seed %d); do not edit.\n"
              "# See SOURCE.md. No expected results: the oracle test compares libspf2 with our\n"
              "# evaluator and checks every difference against generated-differences.txt.\n"
              % SEED)
    for family in corpus.families:
        for case in family["tests"]:
            write_case(family, case, out)


def write_case(family, case, out):
    out.write("---\ndescription: %s\ntests:\n" % yaml_string(family["description"]))
    out.write("  %s:\n" % case["id"])
    for key in ("description", "helo", "host", "mailfrom"):
        out.write("    %s: %s\n" % (key, yaml_string(case[key])))
    out.write("zonedata:\n")
    if "suite_zone" in case:
        for name, entries in case["suite_zone"].items():
            out.write("  %s:\n" % yaml_string(name))
            for entry in entries:
                if isinstance(entry, dict):
                    for kind, value in entry.items():
                        out.write("    - %s: %s\n" % (kind, yaml_value(value)))
                else:
                    out.write("    - %s\n" % entry)
        return
    for name, entries in case_zone(case).items():
        out.write("  %s:\n" % yaml_string(name))
        if not entries:
            out.write("    []\n")
        for position, entry in enumerate(entries):
            if entry in entries[:position]:
                continue  # a name more than one term of the case adds
            if isinstance(entry, tuple):
                out.write("    - %s: %s\n" % (entry[0], yaml_value(entry[1])))
            else:
                out.write("    - %s\n" % entry)


def mechanisms(c):
    c.family("mech", "every mechanism with every qualifier")
    terms = ["all", "a", "a:a.example.net", "mx", "mx:mxonly.example.net", "ptr",
             "ptr:example.net", "ip4:192.0.2.0/24", "ip6:2001:db8::/32",
             "exists:host.example.net", "exists:missing.example.net",
             "include:inc-pass.example.net", "include:inc-fail.example.net",
             "include:inc-softfail.example.net", "include:inc-neutral.example.net"]
    for term in terms:
        for qualifier in ["", "+", "-", "~", "?"]:
            c.add("v=spf1 %s%s ~all" % (qualifier, term))
    for term in terms:
        c.add("v=spf1 " + term.upper(), host=c.rng.choice(CLIENTS))
    for host in CLIENTS:
        c.add("v=spf1 a mx ptr ?all", host=host)
        c.add("v=spf1 -ip4:192.0.2.1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all", host=host)


def cidrs(c):
    c.family("cidr", "CIDR lengths on a, mx, ip4 and ip6, in and out of range")
    v4 = ["0", "1", "8", "23", "24", "25", "31", "32", "33", "01", "032", "", "-1", "x",
          "4294967296"]
    v6 = ["0", "1", "32", "48", "64", "127", "128", "129", "0128", ""]
    for length in v4:
        c.add("v=spf1 a/%s -all" % length, host=c.rng.choice(V4 + MAPPED))
        c.add("v=spf1 mx:mxonly.example.net/%s -all" % length, host=c.rng.choice(V4 + MAPPED))
        c.add("v=spf1 ip4:192.0.2.128/%s -all" % length, host=c.rng.choice(V4 + MAPPED))
    for length in v6:
        c.add("v=spf1 a//%s -all" % length, host=c.rng.choice(V6 + MAPPED))
        c.add("v=spf1 mx//%s -all" % length, host=c.rng.choice(V6))
        c.add("v=spf1 ip6:2001:db8:8000::/%s -all" % length, host=c.rng.choice(V6 + MAPPED))
        c.add("v=spf1 a:a.example.net/24//%s -all" % length, host=c.rng.choice(CLIENTS))
    for term in ["ip4:192.0.2.1/32/32", "ip4:192.0.2.1//64", "ip6:2001:db8::1/64/64",
                 "ip4:192.0.2", "ip4:192.0.2.256", "ip4:192.0.2.01", "ip4:", "ip6:",
                 "ip6:2001:db8::1::2", "ip6:::ffff:192.0.2.1", "ip6:::ffff:192.0.2.0/120",
                 "ip4:::ffff:192.0.2.1", "ip6:192.0.2.1", "a//0/24", "a/24/", "exists:x.example.net/24",
                 "include:inc-pass.example.net/24", "ptr/24", "a:/24"]:
        c.add("v=spf1 %s -all" % term, host=c.rng.choice(CLIENTS))


def macros(c):
    c.family("macro", "macro letters, transformers, delimiters and escapes")
    senders = ["user@$D", "first.last+tag@$D", "-dash@$D", "UPPER.Case@$D", "",
               "a.b.c.d.e.f.g@$D"]
    for letter in "slodipvh":
        for variant in [letter, letter.upper()]:
            for transformer in ["", "1", "2", "r", "1r", "2r", "128", "0"]:
                c.add_exists("%%{%s%s}.$D" % (variant, transformer),
                             host=c.rng.choice(CLIENTS), mailfrom=c.rng.choice(senders))
    for delimiter in [".", "-", "+", ",", "/", "_", "=", "-.", "+_", "x", "r", " "]:
        c.add_exists("%%{l1r%s}.$D" % delimiter, mailfrom="a-b+c.d_e=f,g/h@$D",
                     host=c.rng.choice(CLIENTS))
    for letter in "crt":
        c.add_exists("%%{%s}.$D" % letter, host=c.rng.choice(CLIENTS))
        c.add_exists("%%{%s}.$D" % letter.upper(), host=c.rng.choice(CLIENTS))
    for spec in ["%%.$D", "%_.$D", "%-.$D", "%a.$D", "%{d", "%{}.$D", "%{x}.$D",
                 "%{z1r}.$D", "$D.%", "%{d}%{d}.$D", "%{ir}.$D", "%{d1r.-}.$D",
                 "%{l}x%{o}.$D", "%{s}.%{s}.%{s}.%{s}.%{s}.%{s}.%{s}.%{s}.%{s}.$D",
                 "%{i}.%{i}.%{i}.%{i}.%{i}.%{i}.%{i}.%{i}.%{i}.%{i}.$D", "%{d}",
                 "%{d2}", "%{o1}", "$D.%{v}", "%{h}.$D"]:
        c.add_exists(spec, host=c.rng.choice(CLIENTS), mailfrom=c.rng.choice(senders))
    for where in ["include:{}", "redirect={}", "a:{}", "mx:{}", "ptr:{}"]:
        for spec in ["%{l}.$D", "%{ir}.%{v}.$D", "%{c}.$D", "%{d3}", "%a.$D"]:
            c.add_exists(spec, host=c.rng.choice(CLIENTS), where=where)
    for exp in ["exp.example.net", "%{d}", "%{c}.$D", "%{t}.$D", "%a.$D", "%{x}.$D", "",
                "exp.example.net exp=exp.example.net"]:
        c.add("v=spf1 -all exp=" + exp, host=c.rng.choice(CLIENTS))


def chains(c):
    c.family("chain", "include and redirect chains, loops and their results")
    for depth in [1, 2, 5, 9, 10, 11]:
        for kind, link in [("include", "include:l%d.$D"), ("redirect", "redirect=l%d.$D")]:
            extra = {}
            for level in range(1, depth):
                extra["l%d.$D" % level] = [("TXT", "v=spf1 " + link % (level + 1))]
            extra["l%d.$D" % depth] = [("TXT", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all")]
            c.add("v=spf1 " + link % 1 + (" -all" if kind == "include" else ""), extra=extra,
                  host=c.rng.choice(CLIENTS), host_records=False,
                  note="%s chain of depth %d" % (kind, depth))
    targets = ["pass", "fail", "softfail", "neutral", "noall", "norecord", "permerror",
               "redirect", "timeout", "servfail", "two", "exp", "missing"]
    for target in targets:
        for host in ["192.0.2.1", "198.51.100.7"]:
            c.add("v=spf1 include:inc-%s.example.net ~all" % target, host=host)
            c.add("v=spf1 redirect=inc-%s.example.net" % target, host=host)
            c.add("v=spf1 -include:inc-%s.example.net ?all" % target, host=host)
    for record in ["v=spf1 include:%{d}", "v=spf1 redirect=%{d}", "v=spf1 include:%{d} -all",
                   "v=spf1 a redirect=%{d}", "v=spf1 redirect=inc-pass.example.net all",
                   "v=spf1 -all redirect=inc-pass.example.net",
                   "v=spf1 redirect=inc-pass.example.net ?all",
                   "v=spf1 include:inc-pass.example.net include:inc-pass.example.net -all",
                   "v=spf1 include: -all", "v=spf1 redirect=", "v=spf1 include -all",
                   "v=spf1 include:inc-exp.example.net ~all"]:
        c.add(record, host=c.rng.choice(CLIENTS))


def limits(c):
    c.family("limit", "the 10-term, void-lookup, MX-name and PTR-name limits")
    for count in [9, 10, 11]:
        for term in ["a:a.example.net", "mx:mxonly.example.net", "exists:host.example.net/0",
                     "ptr:nowhere.example.net", "include:inc-noall.example.net",
                     "exists:host.example.net"]:
            terms = [term] * count
            c.add("v=spf1 %s ip4:192.0.2.0/24 ip6:2001:db8::/32 -all" % " ".join(terms),
                  host=c.rng.choice(["198.51.100.7", "192.0.2.10", "2001:db8::10"]))
        split = {"sub.$D": [("TXT", "v=spf1 " + " ".join(["a:a.example.net"] * (count - 5)))]}
        c.add("v=spf1 a:a.example.net a:a.example.net a:a.example.net a:a.example.net "
              "include:sub.$D ip4:0.0.0.0/0 ip6:::/0 -all",
              extra=split, host=c.rng.choice(CLIENTS))
    for count in [1, 2, 3]:
        for term in ["a:nx%d.example.net", "mx:nx%d.example.net", "exists:nx%d.example.net",
                     "a:nodata%d.example.net", "mx:nodata%d.example.net"]:
            terms = [term % n for n in range(count)]
            extra = {"nodata%d.example.net" % n: [("TXT", "no spf here")] for n in range(count)}
            c.add("v=spf1 %s ip4:192.0.2.0/24 -all" % " ".join(terms), extra=extra,
                  host=c.rng.choice(V4 + MAPPED))
    for count in [9, 10, 11, 12]:
        for matching in ["first", "last"]:
            extra = {"mx.$D": []}
            for n in range(count):
                address = "192.0.2.20" if (matching == "last") == (n == count - 1) else \
                    "203.0.113.%d" % (n + 1)
                extra["mx.$D"].append(("MX", [n + 1, "mx%d.$D" % n]))
                extra["mx%d.$D" % n] = [("A", address)]
            c.add("v=spf1 mx:mx.%{d} -all", extra=extra, host="192.0.2.20")
    for index, count in enumerate([9, 10, 11, 12]):
        for offset, matching in enumerate(["first", "last"]):
            # the client's PTR names, one of them validated (RFC 7208 §4.6.4, §5.5)
            client = "203.0.113.%d" % (10 + 2 * index + offset)
            reverse = reverse_name(client)
            extra = {reverse: [("PTR", "p%d.$D" % n) for n in range(count)]}
            for n in range(count):
                validated = (matching == "last") == (n == count - 1)
                extra["p%d.$D" % n] = [("A", client if validated else "203.0.113.99")]
            c.add("v=spf1 ptr:%{d} -all", host=client, extra=extra,
                  note="%d PTR names, the %s validated" % (count, matching))
    c.add("v=spf1 ptr ptr ptr ptr ptr ptr ptr ptr ptr ptr ptr -all", host="192.0.2.1")
    c.add("v=spf1 " + " ".join(["exists:%%{i}.e%d.%%{d}" % n for n in range(11)]) + " -all",
          host=c.rng.choice(CLIENTS))


def syntax(c):
    c.family("syntax", "version, whitespace, unknown terms, duplicate modifiers, bad names")
    records = [
        "v=spf1", "v=spf1 ", " v=spf1 -all", "v=spf1  -all", "v=spf1\t-all", "v=spf1 -all ",
        "v=spf1 -all  ", "V=SPF1 -all", "v=Spf1 -all", "v=spf10 -all", "v=spf1x -all",
        "v=spf2 -all", "spf1 -all", "v=spf1-all", "v=spf1 -all\n", "v=spf1\n-all",
        "v=spf1 -all\r\n", "v=spf1 foo -all", "v=spf1 foo:bar -all", "v=spf1 -foo=bar ~all",
        "v=spf1 foo=bar -all", "v=spf1 foo= -all", "v=spf1 =bar -all", "v=spf1 1foo=bar -all",
        "v=spf1 foo-bar.baz_1=x -all", "v=spf1 foo=%{x} -all", "v=spf1 foo=%{d} -all",
        "v=spf1 foo=bar foo=baz -all", "v=spf1 redirect=a.example.net redirect=b.example.net",
        "v=spf1 -all exp=e.example.net exp=e.example.net", "v=spf1 all:x", "v=spf1 all/24",
        "v=spf1 +-all", "v=spf1 ++all", "v=spf1 -", "v=spf1 *all", "v=spf1 a:",
        "v=spf1 a:example", "v=spf1 a:example.", "v=spf1 a:a.example.net. -all",
        "v=spf1 a:a..example.net -all", "v=spf1 a:.a.example.net -all",
        "v=spf1 a:a.example.123 -all", "v=spf1 a:a.example.1a -all", "v=spf1 a:a.example.a1 -all",
        "v=spf1 a:a.example.-net -all", "v=spf1 a:a.example.net- -all", "v=spf1 a:a_b.example.net -all",
        "v=spf1 a:" + "l" * 64 + ".example.net -all", "v=spf1 a:" + "l" * 63 + ".example.net -all",
        "v=spf1 a:" + ".".join(["l" * 60] * 5) + ".example.net -all",
        "v=spf1 mx: -all", "v=spf1 ptr: -all", "v=spf1 exists: -all", "v=spf1 exists -all",
        "v=spf1 ip4 -all", "v=spf1 ip6 -all", "v=spf1 a:a.example.net:25 -all",
        "v=spf1 a:192.0.2.1 -all", "v=spf1 a:[192.0.2.1] -all", "v=spf1 a:caf\u00e9.example -all",
        "v=spf1 a:a.example.net\x01 -all", "v=spf1 -all \x7f", "v=spf1 redirect=a.example.net -all",
        "v=spf1 redirect=a.example.net/24", "v=spf1 exp= -all", "v=spf1 -all exp",
        "v=spf1 -all redirect", "v=spf1 A:A.EXAMPLE.NET -ALL", "v=spf1 Include:inc-pass.example.net -all",
        "v=spf1 REDIRECT=inc-pass.example.net", "v=spf1 ip4:192.0.2.0/24, -all",
        "v=spf1 ip4:192.0.2.0/24;-all", "v=spf1 -all -all", "v=spf1 ?all +all",
        "v=spf1 " + "ip4:203.0.113.1 " * 60 + "-all",
    ]
    for record in records:
        c.add(record, host=c.rng.choice(CLIENTS))
    multi = [("v=spf1 +all", "v=spf1 -all"), ("v=spf1 +all", "v=spf10 -all"),
             ("v=spf1 +all", "spf2.0/pra -all"), ("v=spf1 +all", "v=spf1"),
             ("not spf", "v=spf1 ?all"), (["v=spf1 ip4:192.0.2.0/24", " -all"],),
             (["v=spf1 ip4:192.0.2.0/24 ", "-all"],), (["v=spf1 ip4:192.0.2.0", "/24 -all"],),
             (["v=spf", "1 -all"],), (["v=spf1", " -all"],)]
    for records in multi:
        c.add(records, host=c.rng.choice(CLIENTS),
              note=" | ".join(json.dumps(r) for r in records))
    c.add(None, host=c.rng.choice(CLIENTS), note="no record at all")
    c.add(None, host=c.rng.choice(CLIENTS), host_records=False, note="nxdomain sender domain")
    c.add("v=spf1 -all", mailfrom="", helo="$D", host=c.rng.choice(CLIENTS),
          note="null sender, the HELO identity")
    c.add("v=spf1 -all", mailfrom="@$D", host=c.rng.choice(CLIENTS), note="no local part")
    c.add("v=spf1 -all", mailfrom="user@$D.", host=c.rng.choice(CLIENTS),
          note="trailing dot in the sender domain")
    c.add("v=spf1 -all", mailfrom="user", host=c.rng.choice(CLIENTS), note="sender without @")


def fuzz(c, count):
    c.family("fuzz", "random compositions of valid and invalid terms (seeded)")
    pool = ["all", "a", "a/24", "a//64", "a:a.example.net", "a:a.example.net/0", "mx",
            "mx/30", "mx:mxonly.example.net", "ptr", "ptr:example.net", "ip4:192.0.2.0/25",
            "ip4:198.51.100.0/24", "ip4:0.0.0.0/0", "ip6:2001:db8::/33", "ip6:::/0",
            "ip6:2001:db8:ffff::/48", "exists:%{i}.%{d}", "exists:%{ir}.%{v}.arpa.%{d}",
            "exists:%{l1r-}.%{d}", "exists:missing.example.net", "include:inc-pass.example.net",
            "include:inc-fail.example.net", "include:inc-norecord.example.net",
            "include:inc-timeout.example.net", "include:%{d2}", "redirect=inc-softfail.example.net",
            "redirect=inc-missing.example.net", "exp=exp.example.net", "exp=%{d}",
            "foo=bar", "unknown", "a:%{c}.example.net", "ip4:192.0.2.999", "mx:nx.example.net",
            "a:nodata.example.net", "%{d}", "-", "v=spf1", "exists:%{p}.example.net",
            "a:a.example.net//129", "ip4:192.0.2.1/33"]
    for _ in range(count):
        terms = []
        for _ in range(c.rng.randint(1, 6)):
            term = c.rng.choice(pool)
            if not term.startswith(("exp=", "redirect=", "foo=")) and c.rng.random() < 0.4:
                term = c.rng.choice("+-~?") + term
            terms.append(term)
        c.add("v=spf1 " + " ".join(terms), host=c.rng.choice(CLIENTS),
              extra={"nodata.example.net": [("TXT", "not spf")]})


SUITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "corpora", "spf",
                     "openspf", "rfc7208-tests.yml")


def mutated(record, rng):
    """`record` with one seeded mutation: a term dropped, doubled, moved or re-qualified, a CIDR
    length changed, a pool term inserted, a byte changed, or the separators changed."""
    terms = record.split(" ")
    head, body = terms[:1], terms[1:]
    kind = rng.choice(["drop", "double", "move", "qualifier", "cidr", "insert", "byte",
                       "space"])
    if not body:
        kind = "insert"
    if kind == "drop":
        body.pop(rng.randrange(len(body)))
    elif kind == "double":
        body.insert(rng.randrange(len(body) + 1), rng.choice(body))
    elif kind == "move":
        body.insert(rng.randrange(len(body) + 1), body.pop(rng.randrange(len(body))))
    elif kind == "qualifier":
        at = rng.randrange(len(body))
        body[at] = rng.choice(["", "+", "-", "~", "?"]) + body[at].lstrip("+-~?")
    elif kind == "cidr":
        at = rng.randrange(len(body))
        length = rng.choice(["/0", "/1", "/24", "/32", "/33", "//0", "//64", "//128", "//129",
                             "/24//64"])
        body[at] = body[at].split("/")[0] + length
    elif kind == "insert":
        body.insert(rng.randrange(len(body) + 1),
                    rng.choice(["ip4:1.2.3.0/24", "a", "mx", "ptr", "-all", "?all",
                                "exists:%{i}.%{d}", "include:%{d}", "redirect=%{d}",
                                "exp=%{d}", "foo=bar", "%{d}", "a:%{l}.%{d}"]))
    elif kind == "byte":
        text = " ".join(body)
        if text:
            at = rng.randrange(len(text))
            text = text[:at] + rng.choice(["%", "{", ":", "/", ".", "", "=", "A"]) + \
                text[at + 1:]
        body = text.split(" ")
    else:
        return " ".join(head) + rng.choice(["  ", "\t", " \n"]) + " ".join(body)
    return " ".join(head + body)


def mutations(c):
    """Each test of the RFC 7208 suite with its scenario's zone and the record of its identity
    domain mutated once (scenarios with CNAMEs are left out: libspf2's zone layer has none)."""
    c.family("mutate", "the RFC 7208 suite's records, mutated (seeded)")
    family = c.families[-1]
    with open(SUITE, encoding="utf-8") as suite:
        scenarios = list(yaml.safe_load_all(suite))
    for scenario in scenarios:
        zonedata = scenario.get("zonedata") or {}
        if any(isinstance(e, dict) and "CNAME" in e for es in zonedata.values() for e in es):
            continue
        for test_id, test in scenario["tests"].items():
            sender = test.get("mailfrom") or ""
            domain = (sender.rpartition("@")[2] if sender else test.get("helo", "")).lower()
            entries = next((es for name, es in zonedata.items() if name.lower() == domain), [])
            at = next((n for n, e in enumerate(entries) if isinstance(e, dict) and
                       any(k in ("SPF", "TXT") and isinstance(v, str) and
                           v.lower().startswith("v=spf1") for k, v in e.items())), None)
            if at is None:
                continue
            zone = {name: [dict(e) if isinstance(e, dict) else e for e in es]
                    for name, es in zonedata.items()}
            zone_entries = next(es for name, es in zone.items() if name.lower() == domain)
            for key in list(zone_entries[at]):
                if key in ("SPF", "TXT"):
                    zone_entries[at][key] = mutated(zone_entries[at][key], c.rng)
            record = next(v for k, v in zone_entries[at].items() if k in ("SPF", "TXT"))
            family["tests"].append({
                "id": "mutate-%03d" % (len(family["tests"]) + 1), "host": test["host"],
                "helo": test.get("helo", ""), "mailfrom": sender, "suite_zone": zone,
                "description": "rfc7208 %s mutated: %s" % (test_id, record)})


def main():
    corpus = Corpus()
    mechanisms(corpus)
    cidrs(corpus)
    macros(corpus)
    chains(corpus)
    limits(corpus)
    syntax(corpus)
    fuzz(corpus, 120)
    mutations(corpus)
    write(corpus, sys.stdout)


if __name__ == "__main__":
    main()
