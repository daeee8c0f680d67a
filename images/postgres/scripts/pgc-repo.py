#!/usr/bin/env python3
"""Files of the backup repository that pgBackRest does not manage (the logical dumps), stored where
pgBackRest keeps the cluster's physical backups: under repo1-path of a posix repository, or in the
S3 bucket under repo1-path.

    pgc-repo.py put NAME [FILE]     store FILE (default: standard input, streamed) as NAME
    pgc-repo.py get NAME [FILE]     write NAME to FILE (default: standard output)
    pgc-repo.py list PREFIX         one JSON line per file under PREFIX: name, size
    pgc-repo.py delete NAME
    pgc-repo.py option OPTION       the value of a (non-secret) repository option, e.g. repo1-cipher-type

`put` prints one JSON line: the size and SHA-256 of what it stored.

NAME is relative to repo1-path. The repository comes from pgbackrest.conf (PGBACKREST_CONFIG,
default /etc/pgbackrest/pgbackrest.conf; the [global] section, then the stanza's section named
by PGBACKREST_STANZA), and from PGBACKREST_* environment variables, which override the file as
they do for pgBackRest: the S3 keys are PGBACKREST_REPO1_S3_KEY and PGBACKREST_REPO1_S3_KEY_SECRET.

Python's standard library only (the database image has no S3 client): S3 requests are signed with
AWS Signature Version 4 and sent over HTTPS, verified against repo1-storage-ca-file or the system's
CAs unless repo1-storage-verify-tls=n. Files larger than one part are sent as multipart uploads.
Exit status: 0, 1 on an error, 2 when NAME does not exist.
"""

from __future__ import annotations

import configparser
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import ssl
import sys
import urllib.parse
import xml.etree.ElementTree as ET

DEFAULT_CONFIG = "/etc/pgbackrest/pgbackrest.conf"
# Files up to one part go in one request; larger ones in parts (S3 allows 10,000 parts of 5 MiB or more).
PART_SIZE = max(5 * 1024 * 1024, int(os.environ.get("PGC_REPO_PART_SIZE") or 64 * 1024 * 1024))
CHUNK = 1024 * 1024
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class _Hashing:
    """A reader that counts and hashes what passes through it."""

    def __init__(self, stream):
        self.stream = stream
        self.size = 0
        self.sha256 = hashlib.sha256()

    def read(self, n):
        block = self.stream.read(n)
        self.size += len(block)
        self.sha256.update(block)
        return block


class RepoError(Exception):
    pass


class NotFound(RepoError):
    pass


def load_options(environ=None):
    """The repository options, as pgBackRest would see them (file, then environment)."""
    environ = os.environ if environ is None else environ
    path = environ.get("PGBACKREST_CONFIG", DEFAULT_CONFIG)
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as e:
        raise RepoError("cannot read the pgBackRest configuration %s: %s" % (path, e.strerror)) from None
    options = dict(parser["global"]) if parser.has_section("global") else {}
    stanza = environ.get("PGBACKREST_STANZA", "")
    if stanza and parser.has_section(stanza):
        options.update(parser[stanza])
    for key, value in environ.items():
        if key.startswith("PGBACKREST_REPO1_"):
            options[key[len("PGBACKREST_"):].lower().replace("_", "-")] = value
    return options


def _yes(value, default=True):
    if value is None or value == "":
        return default
    return str(value).strip().lower() in ("y", "yes", "1", "true", "on")


def _clean(name):
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise RepoError("invalid name %r" % name)
    return "/".join(parts)


class PosixRepo:
    def __init__(self, options):
        self.root = options.get("repo1-path") or "/var/lib/pgbackrest"

    def _path(self, name):
        return os.path.join(self.root, _clean(name))

    def put(self, name, stream):
        path = self._path(name)
        os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
        tmp = path + ".partial"
        size = 0
        try:
            with open(tmp, "wb") as out:
                while True:
                    block = stream.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    size += len(block)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return size

    def get(self, name, out):
        try:
            f = open(self._path(name), "rb")
        except FileNotFoundError:
            raise NotFound(name) from None
        with f:
            while True:
                block = f.read(CHUNK)
                if not block:
                    break
                out.write(block)

    def list(self, prefix):
        base = self._path(prefix)
        found = []
        for root, _dirs, files in os.walk(base):
            for file in files:
                if file.endswith(".partial"):
                    continue
                full = os.path.join(root, file)
                found.append({"name": os.path.relpath(full, self.root), "size": os.path.getsize(full)})
        return sorted(found, key=lambda x: x["name"])

    def delete(self, name):
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            raise NotFound(name) from None


class _Connection(http.client.HTTPSConnection):
    """HTTPS to ``connect_host`` (repo1-storage-host) while the certificate is checked against, and
    SNI names, the endpoint."""

    def __init__(self, host, port, connect_host, context, timeout):
        super().__init__(host, port, context=context, timeout=timeout)
        self._connect_host = connect_host
        self._ssl_context = context

    def connect(self):
        sock = socket.create_connection((self._connect_host, self.port), self.timeout)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)


def _quote(text, safe="/"):
    return urllib.parse.quote(text, safe=safe + "~")


class S3Repo:
    def __init__(self, options):
        self.bucket = options.get("repo1-s3-bucket") or ""
        self.endpoint = options.get("repo1-s3-endpoint") or ""
        self.region = options.get("repo1-s3-region") or "us-east-1"
        self.key = options.get("repo1-s3-key") or ""
        self.secret = options.get("repo1-s3-key-secret") or ""
        self.token = options.get("repo1-s3-token") or ""
        if not (self.bucket and self.endpoint and self.key and self.secret):
            raise RepoError("an S3 repository needs repo1-s3-bucket, repo1-s3-endpoint and the keys "
                            "(PGBACKREST_REPO1_S3_KEY, PGBACKREST_REPO1_S3_KEY_SECRET)")
        self.port = int(options.get("repo1-storage-port") or options.get("repo1-s3-port") or 443)
        self.path_style = (options.get("repo1-s3-uri-style") or "host") == "path"
        self.prefix = (options.get("repo1-path") or "/").strip("/")
        self.host = self.endpoint if self.path_style else "%s.%s" % (self.bucket, self.endpoint)
        self.connect_host = options.get("repo1-storage-host") or options.get("repo1-s3-host") or self.host
        verify = _yes(options.get("repo1-storage-verify-tls", options.get("repo1-s3-verify-tls")))
        ca_file = options.get("repo1-storage-ca-file") or options.get("repo1-s3-ca-file") or None
        if verify:
            self.context = ssl.create_default_context(cafile=ca_file)
        else:
            self.context = ssl.create_default_context()
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE
        self.timeout = float(options.get("io-timeout") or 60)

    def _key(self, name):
        name = _clean(name)
        return "%s/%s" % (self.prefix, name) if self.prefix else name

    def _request(self, method, key="", query=None, body=b"", headers=None, stream_to=None):
        query = query or {}
        if self.path_style:
            path = "/" + self.bucket + ("/" + key if key else "")
        else:
            path = "/" + key
        canonical_uri = _quote(path)
        canonical_query = "&".join("%s=%s" % (_quote(k, ""), _quote(str(v), ""))
                                   for k, v in sorted(query.items()))
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        date = amz_date[:8]
        payload_hash = hashlib.sha256(body).hexdigest()
        host_header = self.host if self.port == 443 else "%s:%d" % (self.host, self.port)
        all_headers = {"host": host_header, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
        if self.token:
            all_headers["x-amz-security-token"] = self.token
        for k, v in (headers or {}).items():
            all_headers[k.lower()] = str(v)
        signed = sorted(all_headers)
        canonical_headers = "".join("%s:%s\n" % (k, " ".join(all_headers[k].split())) for k in signed)
        canonical = "\n".join([method, canonical_uri, canonical_query, canonical_headers, ";".join(signed),
                               payload_hash])
        scope = "%s/%s/s3/aws4_request" % (date, self.region)
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        k = ("AWS4" + self.secret).encode()
        for part in (date, self.region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        all_headers["authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
                                        % (self.key, scope, ";".join(signed), signature))
        all_headers["content-length"] = str(len(body))
        del all_headers["host"]
        conn = _Connection(self.host, self.port, self.connect_host, self.context, self.timeout)
        try:
            conn.request(method, canonical_uri + ("?" + canonical_query if canonical_query else ""), body=body,
                         headers={**all_headers, "Host": host_header})
            response = conn.getresponse()
            if response.status == 404:
                response.read()
                raise NotFound(key)
            if response.status >= 300:
                text = response.read().decode("utf-8", "replace")
                code = re.search(r"<Code>([^<]*)</Code>", text)
                raise RepoError("S3 %s %s answered %d %s" % (method, path, response.status,
                                                              code.group(1) if code else text[:200]))
            if stream_to is not None:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    stream_to.write(block)
                return response, b""
            return response, response.read()
        except (OSError, http.client.HTTPException) as e:
            raise RepoError("S3 %s %s: %s" % (method, path, e)) from None
        finally:
            conn.close()

    def put(self, name, stream):
        key = self._key(name)
        first = _read_part(stream)
        if len(first) < PART_SIZE:
            self._request("PUT", key, body=first)
            return len(first)
        _, body = self._request("POST", key, query={"uploads": ""})
        upload_id = ET.fromstring(body).findtext(S3_NS + "UploadId") or ET.fromstring(body).findtext("UploadId")
        if not upload_id:
            raise RepoError("S3 did not start a multipart upload of %s" % key)
        parts = []
        size = 0
        try:
            part = first
            while part:
                response, _ = self._request("PUT", key, query={"partNumber": len(parts) + 1, "uploadId": upload_id},
                                            body=part)
                parts.append(response.getheader("ETag"))
                size += len(part)
                part = _read_part(stream)
            xml = "<CompleteMultipartUpload>%s</CompleteMultipartUpload>" % "".join(
                "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>" % (i + 1, etag)
                for i, etag in enumerate(parts))
            self._request("POST", key, query={"uploadId": upload_id}, body=xml.encode())
        except BaseException:
            try:
                self._request("DELETE", key, query={"uploadId": upload_id})
            except RepoError:
                pass
            raise
        return size

    def get(self, name, out):
        self._request("GET", self._key(name), stream_to=out)

    def list(self, prefix):
        key_prefix = self._key(prefix) + "/"
        found = []
        token = None
        while True:
            query = {"list-type": "2", "prefix": key_prefix}
            if token:
                query["continuation-token"] = token
            _, body = self._request("GET", "", query=query)
            root = ET.fromstring(body)
            for item in root.iter(S3_NS + "Contents"):
                key = item.findtext(S3_NS + "Key")
                name = key[len(self.prefix) + 1:] if self.prefix else key
                found.append({"name": name, "size": int(item.findtext(S3_NS + "Size") or 0)})
            token = root.findtext(S3_NS + "NextContinuationToken")
            if root.findtext(S3_NS + "IsTruncated") != "true" or not token:
                break
        return sorted(found, key=lambda x: x["name"])

    def delete(self, name):
        self._request("DELETE", self._key(name))


def _read_part(stream):
    chunks = []
    size = 0
    while size < PART_SIZE:
        block = stream.read(min(CHUNK, PART_SIZE - size))
        if not block:
            break
        chunks.append(block)
        size += len(block)
    return b"".join(chunks)


def open_repo(options):
    kind = options.get("repo1-type") or "posix"
    if kind == "posix":
        return PosixRepo(options)
    if kind == "s3":
        return S3Repo(options)
    raise RepoError("repo1-type %s is not supported here (posix or s3)" % kind)


def main(argv):
    usage = "usage: pgc-repo.py put NAME [FILE] | get NAME [FILE] | list PREFIX | delete NAME | option OPTION"
    if len(argv) < 2 or argv[0] not in ("put", "get", "list", "delete", "option"):
        print(usage, file=sys.stderr)
        return 1
    command, name, rest = argv[0], argv[1], argv[2:]
    try:
        options = load_options()
        if command == "option":
            if re.search(r"key|pass|secret|token", name):
                raise RepoError("%s is a secret: not printed" % name)
            print(options.get(name, ""))
            return 0
        repo = open_repo(options)
        if command == "put":
            with (open(rest[0], "rb") if rest and rest[0] != "-" else os.fdopen(os.dup(0), "rb")) as f:
                reader = _Hashing(f)
                repo.put(name, reader)
            print(json.dumps({"name": _clean(name), "size": reader.size, "sha256": reader.sha256.hexdigest()},
                             sort_keys=True))
        elif command == "get":
            if rest and rest[0] != "-":
                tmp = rest[0] + ".partial"
                try:
                    with open(tmp, "wb") as f:
                        repo.get(name, f)
                    os.replace(tmp, rest[0])
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            else:
                repo.get(name, sys.stdout.buffer)
                sys.stdout.buffer.flush()
        elif command == "list":
            for item in repo.list(name):
                print(json.dumps(item, sort_keys=True))
        else:
            repo.delete(name)
    except NotFound as e:
        print("pgc-repo: %s does not exist in the repository" % (e.args[0] if e.args else name), file=sys.stderr)
        return 2
    except (RepoError, OSError) as e:
        print("pgc-repo: error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
