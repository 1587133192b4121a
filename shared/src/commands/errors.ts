/** Typed command errors: a stable message, an HTTP-like status, and per-field messages for forms. */
export type FieldErrors = Record<string, string>;

export class CommandError extends Error {
  constructor(
    message: string,
    readonly status = 400,
    readonly errors: FieldErrors = {},
  ) {
    super(message);
    this.name = 'CommandError';
  }
}
