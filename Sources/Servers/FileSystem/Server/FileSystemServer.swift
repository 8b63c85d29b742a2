// The filesystem server (the `fs` program): FileSystemService, storing each client's
// record in layout 1 (FileSystemRecordLayouts.swift).

import FileSystemService
import SSRServer

@main
struct FileSystemServer {
    static func main() {
        var server = SSRServer(service: FileSystemService<FileSystemClientRecord>())
        server.run()
    }
}
