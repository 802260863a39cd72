"""The importer's error and how it names a line: shared by the importer and the column roles."""


class ImportFailed(ValueError):
    """The file cannot be imported; the message is one line naming the file, line and column."""


def file_line(row_index):
    """The 1-based file line of data row ``row_index`` (0-based), the header being line 1."""
    return row_index + 2
