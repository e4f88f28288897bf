"""Streaming CSV reading and writing that honour ``csvSettings``.

Reading uses pyarrow's streaming reader with every column typed as string (the scorer converts
the feature columns), so a stray word in a numeric column fails that row, not the whole block.
Writing uses pyarrow's writer when the settings allow it (``"`` quotes, UTF-8) and the ``csv``
module otherwise (pyarrow cannot set a quote character or an output encoding).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from airflow_batchpred.contract import CsvSettings

_HEADER_READ_BYTES = 64 * 1024
_MAX_HEADER_BYTES = 16 * 1024 * 1024


class CsvFormatError(ValueError):
    """The CSV data cannot be read with the given settings; the message says why and what to do."""


def is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


class PrefixedStream(io.RawIOBase):
    """A read-only stream that returns ``prefix`` and then the rest of ``stream``."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = memoryview(prefix)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._prefix.nbytes:
            count = min(len(buffer), self._prefix.nbytes)
            buffer[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        return self._stream.readinto(buffer)  # type: ignore[attr-defined,no-any-return]


def _decode_error(exc: UnicodeDecodeError, encoding: str, offset: int) -> CsvFormatError:
    position = offset + exc.start
    return CsvFormatError(
        f"The data is not valid {encoding}: byte 0x{exc.object[exc.start]:02x} at byte offset "
        f"{position} cannot be decoded. Set csvSettings.encoding to the file's encoding "
        "(e.g. 'latin_1', 'shift_jis', 'ms_kanji')."
    )


def read_header(stream: BinaryIO, settings: CsvSettings) -> tuple[list[str], bytes]:
    """Read bytes until the header row is complete.

    :returns: the column names and every byte read so far (to be replayed to the full reader).
    :raises CsvFormatError: for an empty stream, undecodable bytes or an unusable header.
    """
    decoder = codecs.getincrementaldecoder(settings.encoding)(errors="strict")
    raw = bytearray()
    text = ""
    while True:
        block = stream.read(_HEADER_READ_BYTES)
        at_end = not block
        if block:
            try:
                text += decoder.decode(block)
            except UnicodeDecodeError as exc:
                raise _decode_error(exc, settings.encoding, len(raw)) from None
            raw += block
        rows = _parse_rows(text, settings)
        header_complete = len(rows) >= 2 or (rows and text.endswith(("\n", "\r")))
        if header_complete or at_end:
            break
        if len(raw) > _MAX_HEADER_BYTES:
            raise CsvFormatError(
                "No end of the header row in the first 16 MiB: is csvSettings.delimiter/quotechar "
                "right for this file?"
            )
    if not text.strip():
        raise CsvFormatError("The CSV data is empty: send a header row and at least one data row.")
    names = [name.lstrip("\ufeff") if i == 0 else name for i, name in enumerate(rows[0])]
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise CsvFormatError(f"The header row names a column more than once: {', '.join(duplicates)}")
    return names, bytes(raw)


def _parse_rows(text: str, settings: CsvSettings) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text), delimiter=settings.delimiter_char, quotechar=settings.quotechar)
    rows: list[list[str]] = []
    try:
        for row in reader:
            rows.append(row)
            if len(rows) >= 2:
                break
    except csv.Error:
        pass  # an incomplete quoted field at the end of what was read so far
    return rows


def iter_csv_batches(stream: BinaryIO, settings: CsvSettings, block_size: int) -> Iterator[pa.RecordBatch]:
    """Yield the rows of ``stream`` as record batches whose columns are all strings.

    Batches have rows, except for a header-only file: then one empty batch carries the columns.

    :raises CsvFormatError: for empty, undecodable or malformed data (raised lazily, while iterating).
    """
    names, head = read_header(stream, settings)
    try:
        reader = pacsv.open_csv(
            PrefixedStream(head, stream),
            read_options=pacsv.ReadOptions(
                encoding=settings.encoding, block_size=block_size, column_names=names, skip_rows=1
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=settings.delimiter_char, quote_char=settings.quotechar, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
            ),
        )
        yielded = False
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            if batch.num_rows:
                yielded = True
                yield batch
        if not yielded:
            # A header without rows still defines the columns (checked and written by the runner).
            yield pa.RecordBatch.from_arrays([pa.array([], pa.string()) for _ in names], names=names)
    except pa.ArrowInvalid as exc:
        raise _arrow_error(exc, settings) from None
    except UnicodeDecodeError as exc:
        raise CsvFormatError(
            f"The data is not valid {settings.encoding}: {exc.reason}. Set csvSettings.encoding "
            "to the file's encoding."
        ) from None


def _arrow_error(exc: pa.ArrowInvalid, settings: CsvSettings) -> CsvFormatError:
    text = str(exc)
    if "invalid UTF8" in text:
        return CsvFormatError(
            f"The data is not valid {settings.encoding} ({text}). Set csvSettings.encoding to the "
            "file's encoding (e.g. 'latin_1', 'shift_jis', 'ms_kanji')."
        )
    delimiter = "tab" if settings.delimiter_char == "\t" else settings.delimiter_char
    return CsvFormatError(
        f"Malformed CSV for delimiter {delimiter!r} and quotechar {settings.quotechar!r}: {text}"
    )


class CsvTableWriter:
    """Writes tables to a binary sink as CSV, with one header row first.

    :param sink: an open binary file (or any object with ``write(bytes)``).
    :param settings: delimiter, quote character and encoding of the output.
    """

    def __init__(self, sink: BinaryIO, settings: CsvSettings) -> None:
        self._sink = sink
        self._settings = settings
        self._fast = settings.quotechar == '"' and is_utf8(settings.encoding)
        self._header_written = False
        self.bytes_written = 0

    def write(self, table: pa.Table) -> None:
        data = self._encode_fast(table) if self._fast else self._encode_python(table)
        self._header_written = True
        self._sink.write(data)
        self.bytes_written += len(data)

    def _encode_fast(self, table: pa.Table) -> bytes:
        # The header goes through the csv module so that names are quoted only when they must be.
        header = b"" if self._header_written else self._header(table.column_names).encode("utf-8")
        buffer = io.BytesIO()
        options = pacsv.WriteOptions(
            include_header=False, delimiter=self._settings.delimiter_char, quoting_style="needed"
        )
        pacsv.write_csv(table, buffer, write_options=options)
        return header + buffer.getvalue()

    def _header(self, names: list[str]) -> str:
        text = io.StringIO()
        csv.writer(
            text,
            delimiter=self._settings.delimiter_char,
            quotechar=self._settings.quotechar,
            lineterminator="\n",
        ).writerow(names)
        return text.getvalue()

    def _encode_python(self, table: pa.Table) -> bytes:
        text = io.StringIO()
        writer = csv.writer(
            text,
            delimiter=self._settings.delimiter_char,
            quotechar=self._settings.quotechar,
            lineterminator="\n",
        )
        if not self._header_written:
            text.write(self._header(table.column_names))
        columns = [_column_as_text(column) for column in table.columns]
        writer.writerows(zip(*columns, strict=True))
        try:
            return text.getvalue().encode(self._settings.encoding)
        except UnicodeEncodeError as exc:
            raise CsvFormatError(
                f"The result cannot be written in {self._settings.encoding}: {exc.object[exc.start]!r} "
                "has no encoding there. Choose another csvSettings.encoding."
            ) from None


def _column_as_text(column: pa.ChunkedArray) -> list[str]:
    if pa.types.is_floating(column.type):
        return ["" if value is None else repr(value) for value in column.to_pylist()]
    if pa.types.is_boolean(column.type):
        return ["" if value is None else ("true" if value else "false") for value in column.to_pylist()]
    return ["" if value is None else str(value) for value in column.to_pylist()]
