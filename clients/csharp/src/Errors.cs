// Errors of the ezipc C# client: every failure the hub or this client reports carries an EZIPC_… code
// (docs/errors.md). Arguments this client refuses before sending anything are ArgumentException.
using System;

namespace Ezipc
{
    /// <summary>A failure with the hub's (or this client's) <c>EZIPC_…</c> code.</summary>
    public class EzipcException : Exception
    {
        /// <summary>The code, e.g. <c>EZIPC_KEY_EXISTS</c> (docs/errors.md).</summary>
        public string Code { get; }

        public EzipcException(string code, string message) : base(message)
        {
            Code = code;
        }

        public override string ToString() => Code + ": " + Message;
    }
}
