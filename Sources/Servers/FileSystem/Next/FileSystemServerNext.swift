// The filesystem server's next version (the `fs-next` program, a `version_of` fs in
// system.toml): the same service storing layout 2, whose commits store only the
// handles and locks in use, and reading layout 1 when it replaces `fs` in a live
// upgrade (`upgrade fs fs-next` in the shell).

import FileSystemService
import SSRServer

@main
struct FileSystemServerNext {
    static func main() {
        var server = SSRServer(service: FileSystemService<FileSystemRecordV2>())
        server.run()
    }
}
