"""Natural-language questions about the standard library, with their acceptable answers.

An answer is a qualified name as :mod:`_corpus` records it (the module that defines the
object: ``os.path.join`` is ``posixpath.join`` on POSIX, ``ntpath.join`` on Windows).
Several answers may be right; a search hits when one of its top passages belongs to any
of them. Answers say what a person asking would accept, then were checked to exist in
the corpus (objects without a docstring, e.g. ``csv.DictReader``, cannot be found).
"""

from __future__ import annotations

__all__ = ["QUESTIONS", "DEMO_QUESTIONS"]

QUESTIONS: dict[str, frozenset[str]] = {
    question: frozenset(answers.split())
    for question, answers in (
        (
            "how do I parse a date from a string",
            "datetime.datetime.strptime datetime.date.fromisoformat "
            "datetime.datetime.fromisoformat time.strptime email.utils.parsedate "
            "email.utils.parsedate_tz",
        ),
        ("read a CSV file", "csv csv.reader"),
        ("compute a SHA-256 hash", "hashlib hashlib.sha256 hashlib.new hashlib.file_digest"),
        (
            "serialize an object to JSON",
            "json json.dumps json.dump json.JSONEncoder json.JSONEncoder.encode "
            "json.JSONEncoder.iterencode",
        ),
        (
            "join path components",
            "posixpath.join pathlib.PurePath.joinpath pathlib.PurePath",
        ),
        ("copy a file", "shutil shutil.copy shutil.copyfile shutil.copy2 shutil.copyfileobj"),
        ("shuffle a list randomly", "random.shuffle random.Random.shuffle random.sample"),
        (
            "run a shell command and capture its output",
            "subprocess subprocess.run subprocess.check_output subprocess.getoutput "
            "subprocess.getstatusoutput subprocess.Popen subprocess.Popen.communicate",
        ),
        ("pause the program for a few seconds", "time.sleep asyncio.sleep"),
        (
            "extract files from a zip archive",
            "zipfile zipfile.ZipFile zipfile.ZipFile.extractall zipfile.ZipFile.extract "
            "shutil.unpack_archive",
        ),
        (
            "encode bytes as base64",
            "base64 base64.b64encode base64.standard_b64encode base64.urlsafe_b64encode "
            "base64.encodebytes binascii.b2a_base64",
        ),
        (
            "generate a random unique identifier",
            "uuid uuid.uuid4 uuid.uuid1 uuid.UUID secrets.token_hex secrets.token_urlsafe",
        ),
        (
            "calculate the average of a list of numbers",
            "statistics statistics.mean statistics.fmean",
        ),
        (
            "count how many times each item occurs",
            "collections.Counter collections.Counter.most_common operator.countOf "
            "builtins.list.count",
        ),
        ("find the n largest elements of a collection", "heapq heapq.nlargest"),
        ("square root of a number", "math.sqrt math.isqrt cmath.sqrt decimal.Decimal.sqrt"),
        (
            "find files matching a wildcard pattern",
            "glob glob.glob glob.iglob pathlib.Path.glob pathlib.Path.rglob fnmatch "
            "fnmatch.fnmatch fnmatch.filter",
        ),
        (
            "create a temporary directory",
            "tempfile tempfile.mkdtemp tempfile.TemporaryDirectory",
        ),
        ("open a SQLite database", "sqlite3 sqlite3.connect sqlite3.Connection"),
        (
            "parse command-line arguments",
            "argparse argparse.ArgumentParser getopt getopt.getopt optparse "
            "optparse.OptionParser optparse.OptionParser.parse_args",
        ),
        (
            "split a URL into its components",
            "urllib.parse urllib.parse.urlparse urllib.parse.urlsplit",
        ),
        (
            "replace text matching a regular expression",
            "re re.sub re.subn re.Pattern.sub re.Pattern.subn",
        ),
        ("compress data with gzip", "gzip gzip.compress gzip.open gzip.GzipFile zlib.compress"),
        (
            "download a web page over HTTP",
            "urllib.request urllib.request.urlopen http.client "
            "http.client.HTTPConnection.request http.client.HTTPSConnection",
        ),
        ("send an email", "smtplib smtplib.SMTP smtplib.SMTP.sendmail smtplib.SMTP.send_message"),
        (
            "sort a list of dictionaries by a key",
            "builtins.sorted builtins.list.sort operator.itemgetter",
        ),
        (
            "measure how long a piece of code takes to run",
            "timeit timeit.timeit timeit.repeat timeit.Timer timeit.Timer.timeit "
            "time.perf_counter cProfile",
        ),
        ("write log messages to a file", "logging logging.FileHandler logging.basicConfig"),
        (
            "get the current date and time",
            "datetime.datetime.now datetime.date.today time.time time.localtime",
        ),
        (
            "check whether a file exists",
            "genericpath.exists genericpath.isfile pathlib.Path.exists pathlib.Path.is_file "
            "os.access",
        ),
        ("pretty-print a nested data structure", "pprint pprint.pprint pprint.pformat pprint.pp"),
        ("make a deep copy of an object", "copy copy.deepcopy"),
        (
            "read a configuration file in INI format",
            "configparser configparser.ConfigParser configparser.RawConfigParser "
            "configparser.RawConfigParser.read",
        ),
        ("cache the results of a function", "functools.lru_cache functools.cache"),
    )
}

#: Shown as result tables (the hit-rates cover all of :data:`QUESTIONS`).
DEMO_QUESTIONS = (
    "how do I parse a date from a string",
    "read a CSV file",
    "compute a SHA-256 hash",
)
