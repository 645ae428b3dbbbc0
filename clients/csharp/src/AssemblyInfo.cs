using System.Runtime.CompilerServices;

// The tests cut a connection the way a network would (Client.Abort).
[assembly: InternalsVisibleTo("Ezipc.Tests")]
