// The status codes Curio's HTTP programs answer with or act on (RFC 9110 §15).
//
// Only the codes a read-only file server and a simple client need: a closed set
// keeps every answer a switch the compiler checks, and the reason phrases are
// static text (no allocation, nothing to format). A client that meets another
// code keeps the number (`HTTPResponseInfo.status` is a plain integer).

public enum HTTPStatus: UInt16, Sendable, Equatable, CaseIterable {
    case ok = 200
    case partialContent = 206
    case movedPermanently = 301
    case badRequest = 400
    case notFound = 404
    case methodNotAllowed = 405
    case lengthRequired = 411
    case contentTooLarge = 413
    case uriTooLong = 414
    case rangeNotSatisfiable = 416
    case requestHeaderFieldsTooLarge = 431
    case internalServerError = 500
    case notImplemented = 501
    case httpVersionNotSupported = 505

    public var code: UInt16 { rawValue }

    public var reason: StaticString {
        switch self {
        case .ok: "OK"
        case .partialContent: "Partial Content"
        case .movedPermanently: "Moved Permanently"
        case .badRequest: "Bad Request"
        case .notFound: "Not Found"
        case .methodNotAllowed: "Method Not Allowed"
        case .lengthRequired: "Length Required"
        case .contentTooLarge: "Content Too Large"
        case .uriTooLong: "URI Too Long"
        case .rangeNotSatisfiable: "Range Not Satisfiable"
        case .requestHeaderFieldsTooLarge: "Request Header Fields Too Large"
        case .internalServerError: "Internal Server Error"
        case .notImplemented: "Not Implemented"
        case .httpVersionNotSupported: "HTTP Version Not Supported"
        }
    }
}
