// The Trellis plugin SDK for JavaScript (componentize-js). See README.md.

export { App } from "./app.js";
export { Request } from "./request.js";
export { Response } from "./response.js";
export {
  HttpError,
  BadRequest,
  Unauthorized,
  Forbidden,
  NotFound,
  MethodNotAllowed,
  Conflict,
  Gone,
  ContentTooLarge,
  UnsupportedMediaType,
  Unprocessable,
  TooManyRequests,
  InternalError,
  NotImplemented,
  BadGateway,
  ServiceUnavailable,
  GatewayTimeout,
} from "./errors.js";
export { optional, validate } from "./schema.js";
export { encodeCursor, decodeCursor, pageOf, pageResponse } from "./page.js";
export { SqlError, Transaction, sqlValue } from "./sql.js";
export { CacheError } from "./cache.js";
export { Job, JobError, EnqueueError } from "./jobs.js";
export { Lease, LockError } from "./lock.js";
export { Span } from "./trace.js";
export { HttpResponse, OutboundError } from "./http.js";
