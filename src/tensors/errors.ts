/** Errors raised while encoding or decoding tensor files. */

export type SafetensorsErrorCode =
  | 'truncated' // fewer bytes than the 8-byte length prefix or the header claims
  | 'header_too_large' // the header length prefix exceeds the format's 100 MB limit
  | 'bad_header' // the header is not a JSON object of {dtype, shape, data_offsets} entries
  | 'unknown_dtype' // a dtype the safetensors format does not define
  | 'unsupported_dtype' // a defined dtype Lethe cannot turn into float32 (integers, bool, fp8)
  | 'offsets_out_of_range' // data_offsets point outside the data section
  | 'shape_mismatch' // the byte range does not hold prod(shape) values of the dtype
  | 'bad_tensor'; // a tensor handed to the encoder is inconsistent (data length vs shape)

/** A malformed or unsupported safetensors file; `tensor` names the offending entry when there is one. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  constructor(
    message: string,
    readonly code: SafetensorsErrorCode,
    readonly tensor?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
