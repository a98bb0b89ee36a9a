package amqp091

import (
	"io"
)

// The AMQP 0-9-1 frames and methods as this package reads and writes them,
// exported for warren's in-process broker emulation (internal/amqpmem), so
// that the emulation and the client share one codec. A part of warren's
// patch (WARREN-PATCH.md, part 5); nothing else uses it.

// WireMethod is an AMQP method: one of the Wire* method types below.
type WireMethod = message

// WireProperties are a content header's properties.
type WireProperties = properties

// The methods the emulation reads or writes.
type (
	WireConnectionStart   = connectionStart
	WireConnectionStartOk = connectionStartOk
	WireConnectionTune    = connectionTune
	WireConnectionTuneOk  = connectionTuneOk
	WireConnectionOpen    = connectionOpen
	WireConnectionOpenOk  = connectionOpenOk
	WireConnectionClose   = connectionClose
	WireConnectionCloseOk = connectionCloseOk
	WireChannelOpen       = channelOpen
	WireChannelOpenOk     = channelOpenOk
	WireChannelFlow       = channelFlow
	WireChannelFlowOk     = channelFlowOk
	WireChannelClose      = channelClose
	WireChannelCloseOk    = channelCloseOk
	WireExchangeDeclare   = exchangeDeclare
	WireExchangeDeclareOk = exchangeDeclareOk
	WireExchangeDelete    = exchangeDelete
	WireExchangeDeleteOk  = exchangeDeleteOk
	WireExchangeBind      = exchangeBind
	WireExchangeBindOk    = exchangeBindOk
	WireExchangeUnbind    = exchangeUnbind
	WireExchangeUnbindOk  = exchangeUnbindOk
	WireQueueDeclare      = queueDeclare
	WireQueueDeclareOk    = queueDeclareOk
	WireQueueBind         = queueBind
	WireQueueBindOk       = queueBindOk
	WireQueueUnbind       = queueUnbind
	WireQueueUnbindOk     = queueUnbindOk
	WireQueuePurge        = queuePurge
	WireQueuePurgeOk      = queuePurgeOk
	WireQueueDelete       = queueDelete
	WireQueueDeleteOk     = queueDeleteOk
	WireBasicQos          = basicQos
	WireBasicQosOk        = basicQosOk
	WireBasicConsume      = basicConsume
	WireBasicConsumeOk    = basicConsumeOk
	WireBasicCancel       = basicCancel
	WireBasicCancelOk     = basicCancelOk
	WireBasicPublish      = basicPublish
	WireBasicReturn       = basicReturn
	WireBasicDeliver      = basicDeliver
	WireBasicGet          = basicGet
	WireBasicGetOk        = basicGetOk
	WireBasicGetEmpty     = basicGetEmpty
	WireBasicAck          = basicAck
	WireBasicReject       = basicReject
	WireBasicNack         = basicNack
	WireBasicRecover      = basicRecover
	WireConfirmSelect     = confirmSelect
	WireConfirmSelectOk   = confirmSelectOk
)

// WireFrame is one frame read: a method (Method set), a content header
// (Properties, ClassID and Size set), a body (Body set) or a heartbeat
// (Heartbeat set).
type WireFrame struct {
	Channel    uint16
	Method     WireMethod
	ClassID    uint16
	Size       uint64
	Properties WireProperties
	Header     bool
	Body       []byte
	Heartbeat  bool
}

// WireMethodID returns a method's class and method ids.
func WireMethodID(m WireMethod) (class, method uint16) { return m.id() }

// WireReader reads frames.
type WireReader struct{ r reader }

// NewWireReader returns a reader of the frames r carries (after the
// protocol header, which the caller reads).
func NewWireReader(r io.Reader) *WireReader { return &WireReader{r: reader{r: r}} }

// ReadFrame reads the next frame.
func (wr *WireReader) ReadFrame() (WireFrame, error) {
	f, err := wr.r.ReadFrame()
	if err != nil {
		return WireFrame{}, err
	}
	switch f := f.(type) {
	case *methodFrame:
		return WireFrame{Channel: f.ChannelId, Method: f.Method}, nil
	case *headerFrame:
		return WireFrame{Channel: f.ChannelId, Header: true, ClassID: f.ClassId, Size: f.Size, Properties: f.Properties}, nil
	case *bodyFrame:
		return WireFrame{Channel: f.ChannelId, Body: f.Body}, nil
	case *heartbeatFrame:
		return WireFrame{Channel: f.ChannelId, Heartbeat: true}, nil
	}
	return WireFrame{}, ErrFrame
}

// WriteWireMethod writes a method frame.
func WriteWireMethod(w io.Writer, channel uint16, m WireMethod) error {
	return (&methodFrame{ChannelId: channel, Method: m}).write(w)
}

// WriteWireContent writes a content header frame and the body frames of
// body, each at most frameMax bytes long (frame overhead included).
func WriteWireContent(w io.Writer, channel, classID uint16, props WireProperties, body []byte, frameMax int) error {
	if err := (&headerFrame{ChannelId: channel, ClassId: classID, Size: uint64(len(body)), Properties: props}).write(w); err != nil {
		return err
	}
	chunk := frameMax - frameHeaderSize
	if chunk <= 0 {
		chunk = len(body)
	}
	for len(body) > 0 {
		n := min(chunk, len(body))
		if err := (&bodyFrame{ChannelId: channel, Body: body[:n]}).write(w); err != nil {
			return err
		}
		body = body[n:]
	}
	return nil
}

// WriteWireHeartbeat writes a heartbeat frame.
func WriteWireHeartbeat(w io.Writer) error { return (&heartbeatFrame{}).write(w) }
