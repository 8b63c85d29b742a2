// Small conversions the user library's clients keep needing.

extension String {
    /// A String from a StaticString (the ABI names its errors and states with them).
    public init(_ text: StaticString) {
        self = String(decoding: UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount),
                      as: UTF8.self)
    }
}
