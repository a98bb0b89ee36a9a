package mgmt

import "context"

// Node is a node of the broker's cluster as the management API describes
// it. The API shows no application settings of a node (such as
// dead_letter_worker_publisher_confirm_timeout), only the paths of its
// configuration files.
type Node struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
	// MemAlarm and DiskFreeAlarm are set while the node blocks publishers
	// for want of memory or disk.
	MemAlarm      bool `json:"mem_alarm"`
	DiskFreeAlarm bool `json:"disk_free_alarm"`
	// ConfigFiles are the configuration files the node read
	// (rabbitmq.conf, advanced.config), where it reports them.
	ConfigFiles []string `json:"config_files"`
}

// Nodes lists the nodes of the cluster (GET /api/nodes); a single broker
// is a cluster of one. The user needs the monitoring tag (or
// administrator).
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var out []Node
	if err := c.get(ctx, "/api/nodes", &out); err != nil {
		return nil, err
	}
	return out, nil
}
