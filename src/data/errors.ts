/** Errors raised while loading, splitting, partitioning or encoding data sets. */

export type DataFileErrorCode =
  | 'read_failed' // the file could not be read (missing, permissions); `cause` holds the system error
  | 'empty_file' // no records (a JSONL file of blank lines, a CSV file with only a header)
  | 'bad_json' // a JSONL line is not valid JSON, or not a JSON object
  | 'bad_csv' // CSV syntax: unterminated quote, stray quote, wrong number of fields, duplicate header
  | 'missing_field' // a record (or the CSV header) lacks the text, label or a requested meta field
  | 'bad_field' // a field has the wrong type (text not a string, label not a string or integer, meta not scalar)
  | 'unknown_label'; // a label not in the given label set

export type DataArgumentErrorCode =
  | 'bad_spec' // loadDataset got a spec it cannot resolve
  | 'bad_labels' // a given label set is empty or has duplicates
  | 'bad_option' // a numeric option out of range (fractions, client counts, alpha, seqLen)
  | 'too_few_examples' // the request cannot be met with this many examples
  | 'missing_meta'; // partitionByMeta: an example lacks the field

/** Base class: catch this to handle any data-layer failure. */
export class DataError extends Error {
  override name = 'DataError';
  constructor(
    message: string,
    readonly code: DataFileErrorCode | DataArgumentErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Malformed input file. The message reads `<file>:<line>: <what was wrong>. <what to do>`; `line` is 1-based and
 * absent only for read failures. Loaders throw before returning anything, so no data set is ever half-loaded.
 */
export class DataFileError extends DataError {
  override name = 'DataFileError';
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    message: string,
    override readonly code: DataFileErrorCode,
    options?: { cause?: unknown },
  ) {
    super(`${file}${line === undefined ? '' : `:${line}`}: ${message}`, code, options);
  }
}

/** A call whose arguments cannot be satisfied (bad fraction, more clients than examples, unknown spec). */
export class DataArgumentError extends DataError {
  override name = 'DataArgumentError';
  constructor(
    message: string,
    override readonly code: DataArgumentErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, code, options);
  }
}
