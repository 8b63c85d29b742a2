// SSRStateLayout: how one version of a server lays out a client's state in its SSR,
// apart from the state the server computes with.
//
// A server's logic works on one state type (the timer's `TimerClientState`, fs's
// `FileSystemClientRecord`); what its SSRs hold is a layout of it, with a version
// (SSRFormat's layout word). A new version of the server may store another layout —
// fields reordered so that a commit stores only the part in use, say — and then reads
// the layout of the version it replaces in a live upgrade, migrating each region once
// (SSRFormat, "Migrating a region"). A service generic over its layout runs as either
// version from the same code; the conversions are plain field moves.

public protocol SSRStateLayout: BitwiseCopyable {
    /// The state the service computes with.
    associatedtype Canonical
    /// The layout of the version this one replaces (itself when there is none).
    associatedtype Previous: BitwiseCopyable = Self
    /// The SSR layout version (`SSRService.layoutVersion`).
    static var layoutVersion: UInt32 { get }
    /// The previous layout's version (nil: none).
    static var previousLayoutVersion: UInt32? { get }
    init(_ state: Canonical)
    var state: Canonical { get }
    /// The previous layout's state in this one; nil if it cannot be.
    static func migrating(_ previous: Previous) -> Self?
    /// How many leading bytes can be non-zero (`SSRService.significantBytes`).
    static func significantBytes(of layout: UnsafePointer<Self>) -> Int
}

extension SSRStateLayout {
    public static var previousLayoutVersion: UInt32? { nil }
    public static func migrating(_ previous: Previous) -> Self? { nil }
    public static func significantBytes(of layout: UnsafePointer<Self>) -> Int { MemoryLayout<Self>.size }
}
