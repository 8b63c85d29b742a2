// Tab completion: which word the cursor ends, what it names, and what to do with the
// names that could complete it. The shell supplies the names (its commands, or a
// directory's entries read through the filesystem) and applies the result to the
// editor; the choosing is here, host-tested.
//
// The first word of a line is a command; any other word is a path. Paths are
// absolute, and one without a leading "/" is taken from the root, as the shell's file
// commands take it, so "et" completes from "/" and "/etc/mo" from "/etc/". Completing
// follows bash: one match is inserted whole and ended (a directory with "/", so Tab
// can go on into it; anything else with a space); several matches are extended to
// their longest common prefix; when that adds nothing, they are listed.

public enum CompletionTarget: Equatable, Sendable {
    /// The first word: complete from the shell's command names.
    case command(prefix: [UInt8])
    /// Complete from the entries of `directory` ("" for the root; otherwise ending in "/").
    case path(directory: [UInt8], prefix: [UInt8])
}

public struct CompletionCandidate: Equatable, Sendable {
    public var name: [UInt8]
    public var isDirectory: Bool

    public init(name: [UInt8], isDirectory: Bool = false) {
        self.name = name
        self.isDirectory = isDirectory
    }
}

public enum CompletionResult: Equatable, Sendable {
    /// Nothing matches.
    case none
    /// Insert these bytes at the cursor.
    case insert([UInt8])
    /// Several match and share no more than what is typed: show them (sorted, a "/"
    /// after each directory).
    case choices([[UInt8]])
}

public enum Completion {
    /// What the word ending at the end of `text` (the line before the cursor) names.
    public static func target(of text: ArraySlice<UInt8>) -> CompletionTarget {
        var wordStart = text.endIndex
        while wordStart > text.startIndex && text[wordStart - 1] != ASCII.space { wordStart -= 1 }
        let word = Array(text[wordStart...])
        guard text[..<wordStart].contains(where: { $0 != ASCII.space }) else { return .command(prefix: word) }
        guard let slash = word.lastIndex(of: UInt8(ascii: "/")) else { return .path(directory: [], prefix: word) }
        return .path(directory: Array(word[...slash]), prefix: Array(word[(slash + 1)...]))
    }

    /// The completion of `prefix` among `candidates`.
    public static func resolve(_ prefix: [UInt8], among candidates: [CompletionCandidate]) -> CompletionResult {
        let matches = candidates.filter { $0.name.starts(with: prefix) }
        guard let only = matches.first else { return .none }
        if matches.count == 1 {
            return .insert(Array(only.name[prefix.count...]) + [only.isDirectory ? UInt8(ascii: "/") : ASCII.space])
        }
        let shared = commonPrefix(matches.map { $0.name })
        if shared.count > prefix.count { return .insert(Array(shared[prefix.count...])) }
        let shown = matches.map { $0.isDirectory ? $0.name + [UInt8(ascii: "/")] : $0.name }
        return .choices(shown.sorted { $0.lexicographicallyPrecedes($1) })
    }

    public static func commonPrefix(_ names: [[UInt8]]) -> [UInt8] {
        guard var shared = names.first else { return [] }
        for name in names.dropFirst() {
            var length = 0
            while length < min(shared.count, name.count) && shared[length] == name[length] { length += 1 }
            shared.removeLast(shared.count - length)
        }
        return shared
    }
}
